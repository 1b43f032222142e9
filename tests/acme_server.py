"""A real ACME server on loopback for tests: Debian's pebble (Let's Encrypt's test CA).

    with running_pebble(http_port=edge_http_port, state=tmp) as ca:
        ca.directory_url, ca.api_ca_file   # what the node's ACME client needs
        ca.issuing_roots()                 # PEM of the roots it signs with (trust them in clients)
        ca.status(serial)                  # "Valid" / "Revoked"

pebble validates HTTP-01 by fetching http://<name>:<http_port>/.well-known/acme-challenge/…;
its DNS is pebble-challtestsrv answering every A query with 127.0.0.1 (the one seam where the
public internet is mocked), so the request reaches the edge under test. pebble's own HTTPS API
gets a certificate from a throwaway CA made here.

Outside pytest (docker/test.sh runs the compose deployment against it):

    python -m tests.acme_server --http-port PORT --state DIR

starts the same pebble, writes DIR/pebble.env (PEBBLE_DIRECTORY_URL, PEBBLE_API_CA_FILE,
PEBBLE_ROOTS_FILE: the issuing roots in PEM) once it answers, and stops it on SIGTERM/SIGINT.
"""

import argparse
import contextlib
import datetime as dt
import json
import os
import signal
import ssl
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.stack import free_ports, wait_for


@dataclass
class Pebble:
    directory_url: str
    management_url: str
    api_ca_file: Path  # trust this to talk to pebble's API

    def _get(self, path: str) -> bytes:
        context = ssl.create_default_context(cafile=str(self.api_ca_file))
        with urllib.request.urlopen(self.management_url + path, context=context,  # noqa: S310
                                    timeout=10) as response:
            return response.read()

    def issuing_roots(self) -> bytes:
        """Every root pebble may chain to (it generates them at start)."""
        roots, index = [], 0
        while True:
            try:
                roots.append(self._get(f"/roots/{index}"))
            except urllib.error.HTTPError:
                return b"".join(roots)
            index += 1

    def status(self, serial: int) -> str:
        return json.loads(self._get(f"/cert-status-by-serial/{serial:x}"))["Status"]


def _api_certificate(directory: Path) -> tuple[Path, Path, Path]:
    """A CA and a 127.0.0.1/localhost certificate for pebble's own HTTPS API."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pebble API test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - dt.timedelta(minutes=5))
          .not_valid_after(now + dt.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    import ipaddress

    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = directory / "api-ca.pem", directory / "api-cert.pem", directory / "api-key.pem"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return paths


@contextlib.contextmanager
def running_pebble(*, http_port: int, state: Path) -> Iterator[Pebble]:
    """pebble and its DNS on free loopback ports; both stopped (by pid) afterwards."""
    state.mkdir(parents=True, exist_ok=True)
    api_ca, api_cert, api_key = _api_certificate(state)
    listen, management, dns, challtest = free_ports(4)
    config = state / "pebble.json"
    config.write_text(json.dumps({"pebble": {
        "listenAddress": f"127.0.0.1:{listen}",
        "managementListenAddress": f"127.0.0.1:{management}",
        "certificate": str(api_cert), "privateKey": str(api_key),
        "httpPort": http_port, "tlsPort": free_ports(1)[0],
        "ocspResponderURL": "", "externalAccountBindingRequired": False,
    }}))
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PEBBLE_VA_NOSLEEP": "1",
           # Every order validates afresh (renewals too): the edge must answer each time.
           "PEBBLE_AUTHZREUSE": "0"}
    log = open(state / "pebble.log", "ab")  # noqa: SIM115 (closed below)
    processes = [
        subprocess.Popen(["pebble-challtestsrv", "-defaultIPv4", "127.0.0.1", "-defaultIPv6", "",
                          "-dns01", f"127.0.0.1:{dns}", "-http01", "", "-https01", "",
                          "-tlsalpn01", "", "-management", f"127.0.0.1:{challtest}"],
                         stdout=log, stderr=subprocess.STDOUT, env=env),
    ]
    try:
        processes.append(subprocess.Popen(
            ["pebble", "-config", str(config), "-dnsserver", f"127.0.0.1:{dns}"],
            stdout=log, stderr=subprocess.STDOUT, env=env))
        ca = Pebble(f"https://127.0.0.1:{listen}/dir", f"https://127.0.0.1:{management}", api_ca)

        def answers() -> bool:
            try:
                context = ssl.create_default_context(cafile=str(api_ca))
                with urllib.request.urlopen(ca.directory_url, context=context,  # noqa: S310
                                            timeout=2):
                    return True
            except OSError:
                if any(p.poll() is not None for p in processes):
                    raise AssertionError((state / "pebble.log").read_text()[-2000:]) from None
                return False

        wait_for(answers, timeout=30)
        yield ca
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        log.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="pebble on loopback until SIGTERM")
    parser.add_argument("--http-port", type=int, required=True,
                        help="the port pebble fetches HTTP-01 challenges from (the edge's HTTP)")
    parser.add_argument("--state", type=Path, required=True)
    args = parser.parse_args(argv)
    stop = False

    def request_stop(*_):
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    with running_pebble(http_port=args.http_port, state=args.state) as ca:
        roots = args.state / "roots.pem"
        roots.write_bytes(ca.issuing_roots())
        env = args.state / "pebble.env"
        env.with_suffix(".tmp").write_text(
            f"PEBBLE_DIRECTORY_URL={ca.directory_url}\n"
            f"PEBBLE_API_CA_FILE={ca.api_ca_file}\nPEBBLE_ROOTS_FILE={roots}\n")
        env.with_suffix(".tmp").rename(env)
        while not stop:
            time.sleep(0.2)


if __name__ == "__main__":
    main()
