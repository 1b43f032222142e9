"""The outbound TLS tests' "internet", run inside their network namespace:

    python tests/routing/tls_peers.py <config.json>

Starts one STARTTLS SMTP server (aiosmtpd) per `mx` entry on <ip>:25 with its own certificate,
and one HTTPS server on <https ip>:443 serving MTA-STS policies by Host header. Each message
received is written to <outdir>/<ip>-<n>.eml; `<outdir>/ready` appears once all listen.
Stops on SIGTERM.
"""

import json
import signal
import ssl
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from aiosmtpd.controller import Controller


class Sink:
    def __init__(self, outdir: Path, ip: str):
        self.outdir, self.ip, self.count, self.lock = outdir, ip, 0, threading.Lock()

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        with self.lock:
            self.count += 1
            name = f"{self.ip}-{self.count}.eml"
        (self.outdir / f".{name}").write_bytes(envelope.original_content)
        (self.outdir / f".{name}").rename(self.outdir / name)
        return "250 2.0.0 Ok: queued at the TLS peer"


def _context(cert: str, key: str) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


def _policy_server(config: dict) -> ThreadingHTTPServer:
    policies = config["policies"]

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            host = (self.headers.get("Host") or "").split(":")[0].lower()
            body = policies.get(host)
            if self.path != "/.well-known/mta-sts.txt" or body is None:
                self.send_error(404)
                return
            data = body.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer((config["https_ip"], 443), Handler)
    server.socket = _context(config["https_cert"], config["https_key"]).wrap_socket(
        server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main() -> int:
    config = json.loads(Path(sys.argv[1]).read_text())
    outdir = Path(config["outdir"])
    controllers = []
    for mx in config["mx"]:
        controller = Controller(
            Sink(outdir, mx["ip"]), hostname=mx["ip"], port=25, ready_timeout=10,
            server_hostname=mx["name"], tls_context=_context(mx["cert"], mx["key"]),
            require_starttls=True,
        )
        controller.start()
        controllers.append(controller)
    server = _policy_server(config)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    (outdir / "ready").write_text("ok\n")
    stop.wait()
    server.shutdown()
    for controller in controllers:
        controller.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
