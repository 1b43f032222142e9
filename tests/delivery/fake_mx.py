"""The tests' "internet": one aiosmtpd MX on loopback that all mail for *.example reaches
(the node's transport_maps in test mode, mailhost/backend/config.py).

Per recipient, by local part: `defer-<n>-…` answers 451 4.2.0 to its first n attempts, then
accepts; `reject-…` or `nouser-…` answers 550 5.1.1; anything else is accepted."""

import threading
from dataclasses import dataclass, field

from aiosmtpd.controller import Controller


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes


@dataclass
class FakeMX:
    messages: list[Received] = field(default_factory=list)
    attempts: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        local = address.partition("@")[0].lower()
        with self.lock:
            self.attempts[address] = tried = self.attempts.get(address, 0) + 1
        if local.startswith(("reject-", "nouser-")):
            return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"
        if local.startswith("defer-"):
            times = int(local.split("-")[1])
            if tried <= times:
                return f"451 4.2.0 <{address}>: try again later (attempt {tried})"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        with self.lock:
            self.messages.append(Received(envelope.mail_from, list(envelope.rcpt_tos),
                                          envelope.original_content))
        return "250 2.0.0 Ok: queued at the fake MX"

    def received_by(self, address: str) -> list[Received]:
        with self.lock:
            return [m for m in self.messages if address in m.rcpt_tos]


def start(host: str, port: int) -> tuple[FakeMX, Controller]:
    mx = FakeMX()
    controller = Controller(mx, hostname=host, port=port, ready_timeout=10)
    controller.start()
    return mx, controller
