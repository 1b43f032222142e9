"""B9: the send API, end to end: POST /api/v1/messages → the message at a loopback MX.

The node's Postfix sends everything for *.example to an aiosmtpd MX on loopback (the test
mode's one seam, MAILHOST_TEST_INTERNET_MX, set by bench/env.py), which notes when each
message arrived. Measured:

- latency, request sent → message at the MX, at 1 sender and at 50 concurrent senders (each
  sender one message after another, each message to its own recipient), median and p95;
- sustained accepted messages per second through the API at 50 senders (202s per second),
  against Postfix's own SMTP submission of the same messages (a mailbox's login, 4
  connections, 250s per second): the ratio says what the API costs over plain submission;
- event lag: message at the MX → `delivered` visible in GET /api/v1/messages/{id}, with
  delivery.collect_events run the way Celery beat runs it (every
  DELIVERY_EVENTS_COLLECT_SECONDS), polled every 20 ms.
"""

import smtplib
import statistics
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from aiosmtpd.controller import Controller

from bench.context import BenchError, Ctx
from bench.seed import PASSWORD, seeded_address

SENDERS = 50
CONNECTIONS = 4
TIMEOUT = 120


class ArrivalMX:
    """Accepts everything; remembers when each recipient's message arrived."""

    def __init__(self):
        self.arrived: dict[str, float] = {}
        self.lock = threading.Lock()
        self.event = threading.Condition(self.lock)

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's name
        now = time.perf_counter()
        with self.lock:
            for rcpt in envelope.rcpt_tos:
                self.arrived.setdefault(rcpt.lower(), now)
            self.event.notify_all()
        return "250 2.0.0 Ok: queued"

    def wait(self, addresses: list[str], timeout: float = TIMEOUT) -> dict[str, float]:
        deadline = time.monotonic() + timeout
        with self.lock:
            while not all(a in self.arrived for a in addresses):
                left = deadline - time.monotonic()
                if left <= 0:
                    missing = sum(a not in self.arrived for a in addresses)
                    raise BenchError(f"{missing} of {len(addresses)} messages never reached "
                                     "the loopback MX")
                self.event.wait(left)
            return {a: self.arrived[a] for a in addresses}


def _percentiles(samples: list[float]) -> dict:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]
    return {"median_ms": statistics.median(ordered) * 1000, "p95_ms": p95 * 1000,
            "n": len(ordered)}


def _send(ctx: Ctx, sender: str, to: str) -> tuple[str, float]:
    body = {"from": sender, "to": [to], "subject": "B9", "text": "Bench.\n", "tags": ["b9"]}
    started = time.perf_counter()
    status, answer, _ = ctx.api.request("POST", "/messages", body, timeout=60)
    if status != 202:
        raise BenchError(f"the send API answered {status}: {answer}")
    return answer["id"], started


def _latencies(ctx: Ctx, mx: ArrivalMX, sender: str, *, senders: int, per_sender: int,
               tag: str) -> dict:
    recipients = [[f"{tag}-{s}-{i}@b9-{uuid.uuid4().hex[:8]}.example"
                   for i in range(per_sender)] for s in range(senders)]
    accepted: list[float] = []

    def one_sender(addresses: list[str]) -> list[tuple[str, str, float]]:
        out = []
        for to in addresses:
            message_id, started = _send(ctx, sender, to)
            accepted.append(time.perf_counter())
            out.append((to, message_id, started))
        return out

    started = time.perf_counter()
    with ThreadPoolExecutor(senders) as pool:
        sent = [row for rows in pool.map(one_sender, recipients) for row in rows]
    api_seconds = max(accepted) - started
    arrived = mx.wait([to for to, _, _ in sent])
    return {
        "latency": _percentiles([arrived[to] - t0 for to, _, t0 in sent]),
        "accepted_per_s": len(sent) / api_seconds,
        "sent": sent, "arrived": arrived,
    }


def _smtp_throughput(ctx: Ctx, sender: str, count: int) -> float:
    """Postfix's own submission of the same messages, logged in as the sending mailbox."""
    host, port = ctx.stack.address("submission")
    import ssl

    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE  # loopback, self-signed
    per = count // CONNECTIONS

    def connection(index: int) -> None:
        with smtplib.SMTP(host, port, timeout=60) as client:
            client.starttls(context=context)
            client.login(sender, PASSWORD)
            for i in range(per):
                message = EmailMessage()
                to = f"smtp-{index}-{i}@b9-{uuid.uuid4().hex[:8]}.example"
                message["From"], message["To"], message["Subject"] = sender, to, "B9"
                message["Date"], message["Message-ID"] = formatdate(), make_msgid()
                message.set_content("Bench.\n")
                client.send_message(message)

    started = time.perf_counter()
    with ThreadPoolExecutor(CONNECTIONS) as pool:
        list(pool.map(connection, range(CONNECTIONS)))
    return per * CONNECTIONS / (time.perf_counter() - started)


def _event_lag(ctx: Ctx, sent: list[tuple[str, str, float]], arrived: dict[str, float]) -> dict:
    lags = []
    for to, message_id, _ in sent:
        deadline = time.monotonic() + 30
        while True:
            status, body, _ = ctx.api.request("GET", f"/messages/{message_id}")
            if status == 200 and body["status"] == "delivered":
                lags.append(time.perf_counter() - arrived[to])
                break
            if time.monotonic() > deadline:
                raise BenchError(f"message {message_id} never showed as delivered")
            time.sleep(0.02)
    return _percentiles(lags)


class _Beat(threading.Thread):
    """delivery.collect_events on Celery beat's schedule, in this process."""

    def __init__(self):
        super().__init__(daemon=True)
        self.stopped = threading.Event()

    def run(self) -> None:
        from django.conf import settings
        from django.db import connection

        from delivery.tasks import collect_events

        every = settings.CELERY_BEAT_SCHEDULE["delivery-collect-events"]["schedule"]
        try:
            while not self.stopped.wait(every):
                collect_events()
        finally:
            connection.close()


def send_api(ctx: Ctx, *, samples: int, per_sender: int) -> dict:
    from django.conf import settings

    host, port = settings.MAILHOST_TEST_INTERNET_MX.rsplit(":", 1)
    mx = ArrivalMX()
    controller = Controller(mx, hostname=host, port=int(port))
    controller.start()
    beat = _Beat()
    beat.start()
    try:
        sender = seeded_address(0)
        _latencies(ctx, mx, sender, senders=1, per_sender=3, tag="warm")  # connections, caches
        one = _latencies(ctx, mx, sender, senders=1, per_sender=samples, tag="one")
        lag = _event_lag(ctx, one["sent"], one["arrived"])
        many = _latencies(ctx, mx, sender, senders=SENDERS, per_sender=per_sender, tag="many")
        smtp = _smtp_throughput(ctx, sender, SENDERS * per_sender)
    finally:
        beat.stopped.set()
        beat.join(5)
        controller.stop()
    return {
        "latency_1": one["latency"], "latency_50": many["latency"],
        "api_accepted_per_s": many["accepted_per_s"], "smtp_accepted_per_s": smtp,
        "api_vs_smtp": many["accepted_per_s"] / smtp, "event_lag": lag,
    }
