"""IMAP LOGIN probes: one blocking attempt, and a race of attempts started every few ms.

Dovecot treats loopback connections as secure, so LOGIN needs no STARTTLS here (the greeting's
capabilities are checked to be sure). Dovecot 2.3 answers a *failed* login only on its next
500 ms failure tick (AUTH_FAILURE_DELAY_CHECK_MSECS, even with auth_failure_delay = 0), so a
client that waits for each failure before trying again learns of a change up to 500 ms late.
The race therefore starts a new attempt every `interval` on its own pre-greeted connection
without waiting for the earlier ones to be answered, and reports the first that succeeds.
"""

import contextlib
import selectors
import socket
import time
from dataclasses import dataclass


def login(address: tuple[str, int], user: str, password: str) -> bool:
    """One LOGIN attempt on a fresh connection (blocking); True if it succeeded."""
    with socket.create_connection(address, timeout=10) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        reader = sock.makefile("rb")
        greeting = reader.readline()
        if not greeting.startswith(b"* OK") or b"LOGINDISABLED" in greeting:
            raise RuntimeError(f"IMAP greeting does not allow LOGIN here: {greeting!r}")
        sock.sendall(_login_command(user, password))
        while line := reader.readline():
            if line.startswith(b"a "):
                if line.startswith(b"a OK"):
                    sock.sendall(b"b LOGOUT\r\n")
                    return True
                return False
    return False


def _login_command(user: str, password: str) -> bytes:
    return f'a LOGIN "{user}" "{password}"\r\n'.encode()


@dataclass
class RaceResult:
    ok_at: float  # perf_counter() when the first successful LOGIN's OK arrived
    sent_at: float  # when that attempt was sent
    attempts: int


class _Conn:
    __slots__ = ("sock", "state", "buffer", "sent_at")

    def __init__(self, sock: socket.socket):
        self.sock, self.state, self.buffer, self.sent_at = sock, "greeting", b"", 0.0


class ImapRace:
    def __init__(self, host: str, port: int, *, spare: int = 3, max_in_flight: int = 60):
        self.address = (host, port)
        self.spare, self.max_in_flight = spare, max_in_flight

    def login(self, user: str, password: str) -> bool:
        return login(self.address, user, password)

    def run(
        self, user: str, password: str, *, start: float, timeout: float,
        interval: float = 0.005, on_tick=None,
    ) -> RaceResult:
        """Attempts from now on, one every `interval` (widening to 5% of the time elapsed since
        `start`, so a slow change is not buried under thousands of failing logins)."""
        selector = selectors.DefaultSelector()
        conns: dict[socket.socket, _Conn] = {}
        command = _login_command(user, password)
        attempts, next_send = 0, time.perf_counter()
        try:
            while True:
                now = time.perf_counter()
                if now - start > timeout:
                    raise TimeoutError(f"{user}: no successful LOGIN after {timeout:.0f} s "
                                       f"({attempts} attempts)")
                states = [c.state for c in conns.values()]
                if now >= next_send and "ready" in states and states.count("login") < (
                    self.max_in_flight
                ):
                    conn = next(c for c in conns.values() if c.state == "ready")
                    conn.sock.sendall(command)
                    conn.state, conn.sent_at = "login", now
                    attempts += 1
                    next_send = now + max(interval, (now - start) * 0.05)
                if states.count("ready") + states.count("greeting") < self.spare:
                    self._open(selector, conns)
                if on_tick is not None:
                    on_tick(now)
                wait = max(0.0, min(next_send - time.perf_counter(), 0.002))
                for key, _ in selector.select(wait):
                    result = self._read(selector, conns, conns[key.fileobj])
                    if result is not None:
                        return RaceResult(result[0], result[1], attempts)
        finally:
            for conn in conns.values():
                with contextlib.suppress(OSError, KeyError):
                    selector.unregister(conn.sock)
                conn.sock.close()
            selector.close()

    def _open(self, selector, conns) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setblocking(False)
        sock.connect_ex(self.address)
        conns[sock] = _Conn(sock)
        selector.register(sock, selectors.EVENT_READ)

    def _read(self, selector, conns, conn: _Conn) -> tuple[float, float] | None:
        try:
            data = conn.sock.recv(4096)
        except (BlockingIOError, InterruptedError):
            return None
        except OSError:
            data = b""
        arrived = time.perf_counter()
        if not data:
            self._drop(selector, conns, conn)
            return None
        conn.buffer += data
        while b"\n" in conn.buffer:
            line, conn.buffer = conn.buffer.split(b"\n", 1)
            if conn.state == "greeting" and line.startswith(b"* OK"):
                if b"LOGINDISABLED" in line:
                    raise RuntimeError(f"IMAP greeting does not allow LOGIN here: {line!r}")
                conn.state = "ready"
            elif conn.state == "login" and line.startswith(b"a "):
                if line.startswith(b"a OK"):
                    with contextlib.suppress(OSError):
                        conn.sock.send(b"b LOGOUT\r\n")
                    return arrived, conn.sent_at
                self._drop(selector, conns, conn)  # refused: Dovecot answered on its tick
                return None
        return None

    @staticmethod
    def _drop(selector, conns, conn: _Conn) -> None:
        with contextlib.suppress(OSError, KeyError):
            selector.unregister(conn.sock)
        conn.sock.close()
        conns.pop(conn.sock, None)
