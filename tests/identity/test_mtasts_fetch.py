"""The real HTTPS policy fetcher, as a sending MTA meets a policy host (RFC 8461 3.3).

A real HTTPS server on loopback, with a certificate from a CA made here, serves
mta-sts.good.test; Knot resolves the name. The fetcher is aimed at it through its documented
test seam (`port`, `context` trusting the test CA, `allowed_networks` letting 127.0.0.1
through); the last tests take the seam away and play the organisation admin who points the
name at the portal's own network.
"""

import datetime as dt
import ipaddress
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from identity.records import mtasts_policy
from identity.selectors import posture_snapshot
from identity.verify import (
    POLICY_MAX_BYTES,
    PolicyFetchError,
    check_mtasts_policy,
    https_policy_fetcher,
)
from tests.identity.support import fragment_for, lookup_at

pytestmark = [pytest.mark.dns, pytest.mark.django_db]

HOST = "mta-sts.good.test"
LOOPBACK = [ipaddress.ip_network("127.0.0.1/32")]


class LocalCA:
    """A certificate authority that exists only for this test run."""

    def __init__(self):
        self.key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Mailhost test CA")])
        self.cert = (
            self._builder(name, name, self.key.public_key())
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                critical=True,
            )
            .sign(self.key, hashes.SHA256())
        )

    @staticmethod
    def _builder(subject, issuer, public_key) -> x509.CertificateBuilder:
        now = dt.datetime.now(dt.UTC)
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
        )

    def client_context(self) -> ssl.SSLContext:
        """What the fetcher trusts: this CA only (not the system's store)."""
        pem = self.cert.public_bytes(serialization.Encoding.PEM).decode()
        return ssl.create_default_context(cadata=pem)

    def server_context(self, tmp_path, hostname: str) -> ssl.SSLContext:
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
        cert = (
            self._builder(subject, self.cert.subject, key.public_key())
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(hostname)]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
            .sign(self.key, hashes.SHA256())
        )
        chain, key_file = tmp_path / f"{hostname}.pem", tmp_path / f"{hostname}.key"
        chain.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_file.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(chain, key_file)
        return context


class PolicyHost:
    """A real HTTPS server on 127.0.0.1; `answer(handler)` writes each response. It records
    the paths it was asked for."""

    def __init__(self, context: ssl.SSLContext):
        self.paths: list[str] = []
        self.answer = lambda handler: None
        host = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's naming)
                host.paths.append(self.path)
                host.answer(self)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def serve(self, status: int, body: bytes, **headers: str) -> None:
        def answer(handler):
            handler.send_response(status)
            for name, value in ({"Content-Length": str(len(body))} | headers).items():
                handler.send_header(name.replace("_", "-"), value)
            handler.end_headers()
            handler.wfile.write(body)

        self.answer = answer

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def ca():
    return LocalCA()


def zone_with_policy_host_at(domain, address: str) -> dict[str, str]:
    """good.test's zone as the portal asks for it, but mta-sts.good.test at `address`."""
    lines = [line for line in fragment_for(domain).splitlines() if not line.startswith("mta-sts.")]
    return {"good.test": "\n".join([*lines, f"mta-sts.good.test. 300 IN A {address}", ""])}


@pytest.fixture
def world(dns_world, domain):
    """good.test's zone as the portal asks for it: mta-sts.good.test is a CNAME to the portal
    host, which is at 127.0.0.1 in the test world."""
    dns_world({"good.test": fragment_for(domain)})


@pytest.fixture
def policy_host(ca, tmp_path, world):
    host = PolicyHost(ca.server_context(tmp_path, HOST))
    yield host
    host.close()


def fetcher(ca, policy_host, *, timeout_ms=3000, allowed=LOOPBACK):
    from django.conf import settings

    return https_policy_fetcher(
        lookup=lookup_at(settings.MAILHOST_DNS_RESOLVERS[0]),
        timeout_ms=timeout_ms,
        port=policy_host.port,
        context=ca.client_context(),
        allowed_networks=allowed,
    )


def fetch_error(fetch) -> PolicyFetchError:
    with pytest.raises(PolicyFetchError) as refused:
        fetch("good.test")
    return refused.value


def test_it_accepts_the_current_policy_served_as_text_plain(ca, policy_host, domain):
    snap = posture_snapshot(domain)
    policy_host.serve(200, mtasts_policy(snap).encode(), Content_Type="text/plain; charset=utf-8")
    status, detail, shown = check_mtasts_policy(snap, fetcher(ca, policy_host))
    assert status == "ok", detail
    assert shown[0] == "version: STSv1"
    assert policy_host.paths == ["/.well-known/mta-sts.txt"]


def test_it_refuses_a_policy_served_as_html(ca, policy_host, domain):
    policy_host.serve(200, mtasts_policy(posture_snapshot(domain)).encode(),
                      Content_Type="text/html")
    error = fetch_error(fetcher(ca, policy_host))
    assert "served as text/html, not text/plain" in str(error) and not error.unknown


def test_it_does_not_follow_a_redirect(ca, policy_host, domain):
    def redirect(handler):
        if handler.path == "/elsewhere":  # where a following client would go next
            handler.send_response(200)
            handler.send_header("Content-Type", "text/plain")
            handler.end_headers()
            handler.wfile.write(mtasts_policy(posture_snapshot(domain)).encode())
            return
        handler.send_response(301)
        handler.send_header("Location", f"https://{HOST}:{policy_host.port}/elsewhere")
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    policy_host.answer = redirect
    error = fetch_error(fetcher(ca, policy_host))
    assert "HTTP 301 (redirects are not followed)" in str(error) and not error.unknown
    assert policy_host.paths == ["/.well-known/mta-sts.txt"]


def test_it_refuses_a_body_over_64_kib(ca, policy_host, domain):
    policy = mtasts_policy(posture_snapshot(domain)).encode()
    padding = b"# padding\r\n" * (POLICY_MAX_BYTES // 11 + 1)
    policy_host.serve(200, policy + padding, Content_Type="text/plain")
    error = fetch_error(fetcher(ca, policy_host))
    assert "larger than 64 KiB" in str(error) and not error.unknown


def test_it_gives_up_on_a_server_that_trickles_its_answer(ca, policy_host):
    stop = threading.Event()

    def trickle(handler):
        # Each byte comes well within the per-read timeout; only a deadline on the whole
        # fetch ends it.
        handler.send_response(200)
        handler.send_header("Content-Type", "text/plain")
        handler.send_header("Content-Length", "100000")
        handler.end_headers()
        while not stop.is_set():
            try:
                handler.wfile.write(b"#")
                handler.wfile.flush()
            except OSError:
                return
            time.sleep(0.05)

    policy_host.answer = trickle
    try:
        error = fetch_error(fetcher(ca, policy_host, timeout_ms=500))
    finally:
        stop.set()
    assert "no complete answer within 500 ms" in str(error)
    assert error.unknown  # a slow host may be a passing fault: not marked wrong at once


def test_it_refuses_a_certificate_for_another_name(ca, tmp_path, world):
    impostor = PolicyHost(ca.server_context(tmp_path, "mta-sts.other.test"))
    impostor.serve(200, b"version: STSv1\r\n", Content_Type="text/plain")
    try:
        error = fetch_error(fetcher(ca, impostor))
    finally:
        impostor.close()
    assert "certificate" in str(error).lower() and not error.unknown
    assert impostor.paths == []


def test_it_never_connects_to_loopback_in_production(ca, policy_host, domain):
    """The organisation admin points mta-sts.good.test at 127.0.0.1, where the portal's own
    services listen; without the test seam the fetcher refuses before connecting."""
    policy_host.serve(200, mtasts_policy(posture_snapshot(domain)).encode(),
                      Content_Type="text/plain")
    error = fetch_error(fetcher(ca, policy_host, allowed=()))
    assert "resolves to 127.0.0.1, a loopback address" in str(error) and not error.unknown
    assert policy_host.paths == []


@pytest.mark.parametrize(
    ("address", "what"),
    [
        ("169.254.169.254", "a link-local address"),
        ("10.1.2.3", "a private address"),
        ("0.0.0.0", "an unspecified address"),
    ],
)
def test_it_refuses_a_policy_host_in_a_private_network(dns_world, domain, address, what):
    from django.conf import settings

    dns_world(zone_with_policy_host_at(domain, address))
    fetch = https_policy_fetcher(
        lookup=lookup_at(settings.MAILHOST_DNS_RESOLVERS[0]), timeout_ms=3000
    )
    error = fetch_error(fetch)
    assert f"resolves to {address}, {what}" in str(error) and not error.unknown
