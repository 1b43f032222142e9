"""A fake smarthost on loopback: aiosmtpd with STARTTLS (a test CA's certificate) and AUTH
PLAIN/LOGIN required, one login. What it accepted is kept for the test to read; a wrong login
gets 535 5.7.8 like a real relay's."""

import datetime as dt
import ssl
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.stack import free_ports


@dataclass
class Relayed:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    login: str


@dataclass
class FakeRelay:
    username: str
    password: str
    messages: list[Relayed] = field(default_factory=list)
    logins: list[tuple[str, bool]] = field(default_factory=list)  # (user, accepted)
    tls_seen: list[bool] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def authenticate(self, server, session, envelope, mechanism, auth_data):
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        user, password = auth_data.login.decode(), auth_data.password.decode()
        ok = (user, password) == (self.username, self.password)
        with self.lock:
            self.logins.append((user, ok))
        return AuthResult(success=ok, handled=False, auth_data=user if ok else None)

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        with self.lock:
            self.tls_seen.append(session.ssl is not None)
            self.messages.append(Relayed(envelope.mail_from, list(envelope.rcpt_tos),
                                         envelope.original_content, str(session.auth_data)))
        return "250 2.0.0 Ok: queued at the fake relay"

    def received_by(self, address: str) -> list[Relayed]:
        with self.lock:
            return [m for m in self.messages if address in m.rcpt_tos]


def test_ca(hostname: str) -> tuple[bytes, bytes, bytes]:
    """(CA certificate, server certificate, server key), PEM: a CA of the test's own."""
    now = dt.datetime.now(dt.UTC)
    start, end = now - dt.timedelta(hours=1), now + dt.timedelta(days=1)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Mailhost test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(start).not_valid_after(end)
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(end)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(hostname)]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    return (ca.public_bytes(pem), cert.public_bytes(pem),
            key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()))


def start(host: str, port: int, *, username: str, password: str,
          hostname: str = "relay.test") -> tuple[FakeRelay, Controller]:
    _ca, cert, key = test_ca(hostname)
    with tempfile.TemporaryDirectory(prefix="mhrelay") as tmp:
        cert_file, key_file = Path(tmp, "cert.pem"), Path(tmp, "key.pem")
        cert_file.write_bytes(cert)
        key_file.write_bytes(key)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert_file, key_file)
    relay = FakeRelay(username, password)
    controller = Controller(relay, hostname=host, port=port, ready_timeout=10,
                            server_hostname=hostname, tls_context=context, require_starttls=True,
                            authenticator=relay.authenticate, auth_required=True,
                            auth_require_tls=True)
    controller.start()
    return relay, controller


@contextmanager
def running(*, username: str = "relay-user", password: str = "relay-pass") -> Iterator[FakeRelay]:
    """A fake relay on a free loopback port (`relay.port`) for the length of the block."""
    port = free_ports(1)[0]
    relay, controller = start("127.0.0.1", port, username=username, password=password)
    relay.port = port
    try:
        yield relay
    finally:
        controller.stop()
