"""A minimal ManageSieve client (RFC 5804): what a user's mail client does to upload a script.

Enough of the protocol for the attack tests: STARTTLS, AUTHENTICATE PLAIN, PUTSCRIPT,
SETACTIVE, LOGOUT. Debian has no Python ManageSieve library and `sieve-connect` is
interactive, so the few commands are spoken here, over a real socket to Dovecot.
"""

import base64
import contextlib
import re
import socket
import ssl

_LITERAL = re.compile(rb"\{(\d+)\+?\}\r\n$")


class ManageSieveError(RuntimeError):
    """The server answered NO or BYE; the message is its text."""


class ManageSieve:
    def __init__(self, address: tuple[str, int], timeout: float = 10.0):
        self.sock = socket.create_connection(address, timeout=timeout)
        self.file = self.sock.makefile("rb")
        self._response()  # capabilities, then OK

    def _line(self) -> bytes:
        line = self.file.readline()
        if not line:
            raise ManageSieveError("connection closed")
        literal = _LITERAL.search(line)
        if literal:  # a string sent as a literal: read it whole, then the rest of the line
            line = line[: literal.start()] + self.file.read(int(literal.group(1)))
            line += self.file.readline()
        return line

    def _response(self) -> list[bytes]:
        lines = []
        while True:
            line = self._line()
            if line.startswith((b"OK", b"NO", b"BYE")):
                if not line.startswith(b"OK"):
                    raise ManageSieveError(line.decode(errors="replace").strip())
                return lines
            lines.append(line)

    def _command(self, text: bytes) -> list[bytes]:
        self.sock.sendall(text + b"\r\n")
        return self._response()

    def starttls(self) -> None:
        self._command(b"STARTTLS")
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # the stack's self-signed certificate, on loopback
        self.sock = context.wrap_socket(self.sock)
        self.file = self.sock.makefile("rb")
        self._response()  # capabilities again after TLS

    def login(self, user: str, password: str) -> None:
        token = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
        self._command(f'AUTHENTICATE "PLAIN" "{token}"'.encode())

    def put_script(self, name: str, script: str) -> None:
        data = script.encode()
        self._command(f'PUTSCRIPT "{name}" {{{len(data)}+}}\r\n'.encode() + data)

    def set_active(self, name: str) -> None:
        self._command(f'SETACTIVE "{name}"'.encode())

    def logout(self) -> None:
        with contextlib.suppress(ManageSieveError, OSError):
            self._command(b"LOGOUT")
        self.sock.close()


def upload_active_script(address: tuple[str, int], user: str, password: str, script: str,
                         name: str = "mine") -> None:
    """Log in as the user and make `script` their active Sieve script, as a mail client would."""
    client = ManageSieve(address)
    try:
        client.starttls()
        client.login(user, password)
        client.put_script(name, script)
        client.set_active(name)
    finally:
        client.logout()
