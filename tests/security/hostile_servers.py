"""Loopback servers an attacker points the portal's DNS publishing at.

Each is a real socket on 127.0.0.0/8 (never any other address): an internal service that must not
be reached (`Listener`), a port that speaks something other than DNS (`NotDns`), one that never
answers (`Silent`), one that trickles a reply forever (`Drip`), and an authoritative server whose
answer for a name changes between two queries (`RebindingDns`, DNS rebinding).
"""

import contextlib
import socket
import threading
import time

import dns.flags
import dns.message
import dns.name
import dns.rdatatype
import dns.rrset


def closed_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


class Listener:
    """An internal service: listens, accepts nothing; says whether anyone connected."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.sock.listen(16)
        self.sock.setblocking(False)
        self.port = self.sock.getsockname()[1]

    def was_connected(self) -> bool:
        # The kernel completes the handshake into the backlog even though we never accept.
        try:
            conn, _ = self.sock.accept()
        except BlockingIOError:
            return False
        conn.close()
        return True

    def close(self) -> None:
        self.sock.close()


class _Server:
    """A TCP server on 127.0.0.1 handling each connection in a thread with `handle`."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self.client_gone = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            self.connections += 1
            threading.Thread(target=self._run, args=(conn,), daemon=True).start()

    def _run(self, conn: socket.socket) -> None:
        with conn:
            self.handle(conn)

    def handle(self, conn: socket.socket) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()


class NotDns(_Server):
    """A web server, say: reads the request and answers HTTP, then closes."""

    def handle(self, conn):
        conn.settimeout(5)
        with contextlib.suppress(OSError):
            conn.recv(65535)
            conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")


class Silent(_Server):
    """Accepts and reads, never answers; notices when the client gives up."""

    def handle(self, conn):
        conn.settimeout(0.1)
        while not self._stop.is_set():
            try:
                if conn.recv(65535) == b"":
                    self.client_gone.set()
                    return
            except TimeoutError:
                continue
            except OSError:
                self.client_gone.set()
                return


class Drip(_Server):
    """Announces a 65535-byte DNS reply and sends it one byte at a time, for ever: only a
    deadline on the whole exchange ends it (no single read ever waits long)."""

    def handle(self, conn):
        conn.settimeout(5)
        try:
            conn.recv(65535)
            conn.sendall(b"\xff\xff")
            while not self._stop.is_set():
                conn.sendall(b"\x00")
                time.sleep(0.05)
        except OSError:
            self.client_gone.set()


class RebindingDns:
    """An attacker's authoritative DNS server (UDP) for `name`: the first A query gets
    `first`, every later one `then`. AAAA queries get no data."""

    def __init__(self, name: str, first: str, then: str):
        self.name = dns.name.from_text(name)
        self.answers = [first, then]
        self.a_queries = 0
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def address(self) -> str:
        return f"127.0.0.1@{self.port}"

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                wire, peer = self.sock.recvfrom(65535)
            except (TimeoutError, OSError):
                continue
            query = dns.message.from_wire(wire)
            response = dns.message.make_response(query)
            question = query.question[0]
            if question.name == self.name and question.rdtype == dns.rdatatype.A:
                address = self.answers[min(self.a_queries, 1)]
                self.a_queries += 1
                response.answer.append(dns.rrset.from_text(self.name, 0, "IN", "A", address))
            response.flags |= dns.flags.AA
            self.sock.sendto(response.to_wire(), peer)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()
