"""The node's ban policy server: Dovecot's authentication policy protocol over loopback HTTP.

Dovecot (auth_policy_server_url) POSTs a JSON object of the attributes named in
auth_policy_request_attributes (`login`, `remote`, `protocol`) to `?command=allow` before it
checks a password (and again after a success), and to `?command=report` after every login with
`success` and `policy_reject` added. This server answers `allow` from the ban store
(`{"status": -1}` refuse, `0` allow, `N` wait N seconds first) and counts each failed `report`.
Postfix's SMTP AUTH goes through Dovecot's auth too, with the SMTP client's address as `remote`.

Run by the stack runner as `python -m mailhost.backend.banpolicy --config <file>`; the config
file (rendered by mailhost.backend.config) names the store, the listen address, the file holding
the API key Dovecot sends, and the pid file. A policy change in the file is picked up at the
next request. Dovecot treats an unreachable server as "allow" (auth_policy_reject_on_fail = no):
logins keep working if this process dies, and the stack runner's health check notices it.
"""

import argparse
import hmac
import json
import logging
import os
import signal
import sys
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from mailhost.backend.bans import BanPolicy, BanStore

logger = logging.getLogger("mailhost.banpolicy")

MAX_BODY = 16 * 1024


class PolicyConfig:
    """The config file, re-read when it changes (cheap: one stat per request)."""

    def __init__(self, path: Path):
        self.path = path
        self._mtime = None
        self._lock = threading.Lock()
        self.reload()

    def reload(self) -> None:
        with self._lock:
            mtime = self.path.stat().st_mtime_ns
            if mtime == self._mtime:
                return
            values = json.loads(self.path.read_text())
            self.store = BanStore(values["store"], BanPolicy.from_dict(values["policy"]))
            self.listen = (values["listen"][0], int(values["listen"][1]))
            # The file holds "X-API-Key:<secret>", as Dovecot's api_header setting reads it.
            self.key = Path(values["key_file"]).read_text().partition(":")[2].strip()
            self.pid_file = Path(values["pid_file"])
            self._mtime = mtime


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # Dovecot keeps its connections to us open
    server: "PolicyServer"

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        if urlsplit(self.path).path == "/health":
            self._reply(HTTPStatus.OK, {"status": "ok"})
        else:
            self._reply(HTTPStatus.NOT_FOUND, {"error": "not found"})

    def do_POST(self) -> None:  # noqa: N802
        config = self.server.config
        config.reload()
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(min(length, MAX_BODY)) if length else b""
        sent_key = (self.headers.get("X-API-Key") or "").strip()
        if not hmac.compare_digest(sent_key.encode(), config.key.encode()):
            self._reply(HTTPStatus.FORBIDDEN, {"error": "bad API key"})
            return
        command = parse_qs(urlsplit(self.path).query).get("command", [""])[0]
        try:
            request = json.loads(body or b"{}")
            ip, account = request.get("remote") or "", request.get("login") or ""
            if command == "allow":
                decision = config.store.decide(ip=ip, account=account)
                self._reply(HTTPStatus.OK, {"status": decision.status, "msg": decision.message})
            elif command == "report":
                if not request.get("success") and not request.get("policy_reject") and ip:
                    service = str(request.get("protocol") or "unknown")
                    ban = config.store.record_failure(ip=ip, account=account, service=service)
                    if ban is not None:
                        logger.warning("banned %s until %.0f after %d failed logins",
                                       ban.ip, ban.until, ban.failures)
                self._reply(HTTPStatus.OK, {})
            else:
                self._reply(HTTPStatus.BAD_REQUEST, {"error": "unknown command"})
        except (ValueError, AttributeError) as exc:  # not JSON, or not an address: allow
            logger.warning("policy request not understood (%s): %r", exc, body[:200])
            self._reply(HTTPStatus.OK, {"status": 0, "msg": ""})

    def _reply(self, status: HTTPStatus, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args) -> None:  # noqa: A002 (http.server's signature)
        pass  # one line per login would flood the log; bans are logged when they start


class PolicyServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, config: PolicyConfig):
        self.config = config
        super().__init__(config.listen, Handler)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, type=Path)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s banpolicy: %(message)s"
    )
    config = PolicyConfig(args.config)
    config.store.ensure_schema()
    server = PolicyServer(config)
    # SIGTERM from the stack runner: finish the request under way, then exit.
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    config.pid_file.parent.mkdir(parents=True, exist_ok=True)
    config.pid_file.write_text(f"{os.getpid()}\n")
    logger.info("listening on %s:%s", *config.listen)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        config.pid_file.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
