"""Mail clients that connect from a chosen source address, as an attacker (or a victim) would.

Every 127.0.0.0/8 address works on Linux's loopback, so a test picks 127.0.0.9 as the attacker
and 127.0.0.10 as a bystander. The test stacks' dev relaxations cover 127.0.0.1 only: these
addresses meet the production rules.
"""

import base64
import contextlib
import imaplib
import smtplib
import socket
import ssl

from mailhost.backend.stack import Stack


def _tls() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the stack's self-signed certificate, on loopback
    return context


class _IMAPFrom(imaplib.IMAP4):
    def __init__(self, source: str, host: str, port: int):
        self.source = source
        super().__init__(host, port, timeout=30)

    def _create_socket(self, timeout):
        return socket.create_connection((self.host, self.port), timeout, (self.source, 0))


def imap_login(stack: Stack, source: str, user: str, password: str) -> bool:
    """Whether IMAP LOGIN (after STARTTLS) from `source` succeeds."""
    client = _IMAPFrom(source, *stack.address("imap"))
    try:
        client.starttls(_tls())
        client.login(user, password)
    except imaplib.IMAP4.error:
        return False
    finally:
        with contextlib.suppress(imaplib.IMAP4.error, OSError):
            client.logout()
    return True


def smtp_auth(stack: Stack, source: str, port_name: str, user: str, password: str) -> bool:
    """Whether SMTP AUTH on submission (STARTTLS) or submissions (TLS) from `source` succeeds.
    A connection refused at the greeting counts as a refusal too."""
    host, port = stack.address(port_name)
    try:
        if port_name == "submissions":
            client = smtplib.SMTP_SSL(host, port, context=_tls(), timeout=30,
                                      source_address=(source, 0))
        else:
            client = smtplib.SMTP(host, port, timeout=30, source_address=(source, 0))
            client.starttls(context=_tls())
    except smtplib.SMTPConnectError:
        return False
    try:
        # One AUTH PLAIN, one attempt (smtplib's login() would retry with each mechanism).
        client.ehlo_or_helo_if_needed()
        client.user, client.password = user, password
        client.auth("PLAIN", client.auth_plain)
    except smtplib.SMTPAuthenticationError:
        return False
    finally:
        with contextlib.suppress(smtplib.SMTPException, OSError):
            client.quit()
    return True


def smtp_greeting(stack: Stack, source: str, port_name: str = "smtp") -> bytes:
    """The first line the SMTP server says to a client from `source`."""
    with socket.create_connection(stack.address(port_name), 10, (source, 0)) as sock:
        return sock.makefile("rb").readline()


def sieve_login(stack: Stack, source: str, user: str, password: str) -> bool:
    """Whether ManageSieve AUTHENTICATE PLAIN (after STARTTLS) from `source` succeeds."""
    with socket.create_connection(stack.address("managesieve"), 30, (source, 0)) as raw:
        reader = raw.makefile("rb")
        _until_ok(reader)
        raw.sendall(b"STARTTLS\r\n")
        _until_ok(reader)
        with _tls().wrap_socket(raw) as sock:
            reader = sock.makefile("rb")
            _until_ok(reader)  # the capabilities again, now over TLS
            token = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
            sock.sendall(f'AUTHENTICATE "PLAIN" "{token}"\r\n'.encode())
            return _until_ok(reader).startswith(b"OK")


def _until_ok(reader) -> bytes:
    """Read lines up to the final OK/NO/BYE response; return it."""
    while True:
        line = reader.readline()
        if not line or line.startswith((b"OK", b"NO", b"BYE")):
            return line
