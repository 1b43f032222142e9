"""B8: inbound throughput through the whole pipeline, against Rspamd's stock configuration.

Two stacks from the same binaries, the same rendered Postfix/Dovecot config and the same
lookup rows, on the same messages: the node itself (Postfix → Rspamd with our config: DMARC
enforcement, the per-domain settings map, the greylisting bypass map, the mail-flow Lua hook,
milter headers → LMTP → the global spam Sieve script), and the same with Rspamd's Debian
stock config (what mailcow and docker-mailserver start from: only its sockets, its resolver
and fuzzy hashing, which needs the internet, changed). Both ask the same kind of local
resolver for a fixture sender domain (SPF pass for the sending address).

Mail comes "from the internet": one outside address presented with XCLIENT, 4 connections.
A warm-up round greylists every (sender, recipient) once and retries, so the measured rounds
are the steady state for known senders. Rounds alternate (AB BA …). Measured: messages per
second until every one is in its Maildir; per message, DATA sent → 250 (the milter's work)
p50/p95; Rspamd's RSS (all its processes) after the run.
"""

import contextlib
import dataclasses
import os
import shutil
import smtplib
import sqlite3
import statistics
import threading
import time
import uuid
from email.message import EmailMessage
from email.utils import formatdate
from pathlib import Path

from bench.context import BenchError, Ctx
from bench.env import free_ports, short_state_dir
from bench.seed import seeded_address
from mailhost.backend.inbound import FIXTURE_ZONES_DIR
from mailhost.backend.stack import Stack, _descendants

CONNECTIONS = 4
RECIPIENTS = 100
SENDER_DOMAIN = "sender.bench.test"
CLIENT_IP = "192.0.2.80"  # documentation range: only ever data in XCLIENT and zone files
CLIENT_NAME = f"mx.{SENDER_DOMAIN}"
ZONE = [
    f'{SENDER_DOMAIN}. 300 IN TXT "v=spf1 ip4:{CLIENT_IP} -all"',
    f'_dmarc.{SENDER_DOMAIN}. 300 IN TXT "v=DMARC1; p=none"',
    f"{SENDER_DOMAIN}. 300 IN MX 10 {CLIENT_NAME}.",
    f"{CLIENT_NAME}. 300 IN A {CLIENT_IP}",
    "80.2.0.192.in-addr.arpa. 300 IN PTR mx.sender.bench.test.",
]
# What the stock variant keeps of our Rspamd overrides: sockets, the offline resolver, Redis.
_STOCK_KEEP = {"options.inc", "worker-proxy.inc", "worker-controller.inc", "redis.conf",
               "logging.inc"}


class StockRspamdStack(Stack):
    """The node's stack with Rspamd's stock rules and actions instead of ours."""

    def write_config(self) -> list[str]:
        changed = super().write_config()
        local = self.cfg.path("rspamd/local.d")
        for path in local.iterdir():
            if path.name not in _STOCK_KEEP:
                path.unlink()
        for name in ("rspamd.local.lua", "rspamd.conf.local.override"):
            self.cfg.path(f"rspamd/{name}").unlink(missing_ok=True)
        # Its own greylisting records: the two stacks share the benchmark's Redis database.
        (local / "greylist.conf").write_text('key_prefix = "rgstock";\n')
        proxy = local / "worker-proxy.inc"
        proxy.write_text("".join(line + "\n" for line in proxy.read_text().splitlines()
                                 if not line.startswith(("spam_header", "reject_message"))))
        return changed


def _serve_sender_zone(stack: Stack) -> None:
    body = "".join(f"  local-data: '{line}'\n" for line in ZONE)
    stack.cfg.path(f"{FIXTURE_ZONES_DIR}/bench-sender.conf").write_text(body)
    stack.reload_unbound()


def _message(recipient: str, index: int) -> bytes:
    msg = EmailMessage()
    msg["From"], msg["To"] = f"Bench Sender <news@{SENDER_DOMAIN}>", recipient
    msg["Subject"] = f"Weekly figures {index}"
    msg["Message-ID"] = f"<{uuid.uuid4().hex}@{SENDER_DOMAIN}>"
    msg["Date"] = formatdate()
    msg.set_content("The weekly figures are below; the review moves to Thursday.\n" * 30
                    + f"Reference {uuid.uuid4().hex}\n")
    return msg.as_bytes()


def _session(stack: Stack, jobs: list[tuple[str, bytes]], latencies: list[float]) -> list[str]:
    """One connection as the outside server; returns the recipients that were deferred."""
    deferred = []
    with smtplib.SMTP(*stack.address("smtp"), timeout=60) as smtp:
        smtp.ehlo("harness.bench.test")
        code, text = smtp.docmd("XCLIENT", f"ADDR={CLIENT_IP} NAME={CLIENT_NAME} "
                                           f"HELO={CLIENT_NAME}")
        if code != 220:
            raise BenchError(f"XCLIENT refused: {code} {text!r}")
        smtp.ehlo(CLIENT_NAME)
        for recipient, data in jobs:
            for reply in (smtp.mail(f"news@{SENDER_DOMAIN}"), smtp.rcpt(recipient)):
                if reply[0] not in (250, 251):
                    raise BenchError(f"{recipient}: {reply[0]} {reply[1]!r}")
            started = time.perf_counter()
            code, text = smtp.data(data)
            latencies.append(time.perf_counter() - started)
            if code == 451:
                deferred.append(recipient)
            elif code != 250:
                raise BenchError(f"message refused: {code} {text!r}")
    return deferred


class Round:
    def __init__(self, stack: Stack, homes: list[Path], recipients: list[str]):
        self.stack, self.homes, self.recipients = stack, homes, recipients

    def delivered(self) -> int:
        total = 0
        for home in self.homes:
            for folder in ("Maildir/new", "Maildir/.Junk/new"):
                with contextlib.suppress(FileNotFoundError):
                    total += len(os.listdir(home / folder))
        return total

    def send(self, jobs: list[tuple[str, bytes]], latencies: list[float]) -> list[str]:
        deferred: list[str] = []
        errors: list[BaseException] = []

        def run(part):
            try:
                deferred.extend(_session(self.stack, part, latencies))
            except Exception as exc:
                errors.append(exc)

        threads = [threading.Thread(target=run, args=(jobs[i::CONNECTIONS],))
                   for i in range(CONNECTIONS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise BenchError(f"SMTP send failed: {errors[0]!r}\n{self.stack.log_tails()}")
        return deferred

    def warm_up(self) -> None:
        """Every (sender, recipient) greylisted once, then retried until accepted."""
        jobs = [(r, _message(r, 0)) for r in self.recipients]
        before = self.delivered()
        deadline = time.monotonic() + 120
        while jobs:
            # At most 10 deferrals per session: Postfix hangs up on a client after 20 errors.
            waiting = set()
            for start in range(0, len(jobs), 10):
                waiting |= set(_session(self.stack, jobs[start:start + 10], []))
            jobs = [(r, _message(r, 0)) for r in waiting]
            if time.monotonic() > deadline:
                raise BenchError(f"still greylisted after 120 s: {len(jobs)}")
            if jobs:
                time.sleep(0.5)
        self._wait(before + len(self.recipients))

    def run(self, count: int, offset: int, latencies: list[float]) -> float:
        before = self.delivered()
        rcpts = [self.recipients[(offset + i) % len(self.recipients)] for i in range(count)]
        jobs = [(r, _message(r, offset + i)) for i, r in enumerate(rcpts)]
        started = time.perf_counter()
        if self.send(jobs, latencies):
            raise BenchError("a known sender was greylisted in a measured round")
        self._wait(before + count)
        return time.perf_counter() - started

    def _wait(self, target: int) -> None:
        deadline = time.monotonic() + 300
        while self.delivered() < target:
            if time.monotonic() > deadline:
                raise BenchError(f"only {self.delivered()}/{target} delivered after 300 s\n"
                                 f"{self.stack.log_tails()}")
            time.sleep(0.01)


def rspamd_rss_mb(stack: Stack) -> float | None:
    pid = stack.pid("rspamd")
    if pid is None:
        return None
    total = 0
    for child, _start in _descendants({pid}):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{child}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return round(total / 1024, 1)


def _stock(portal: Stack) -> StockRspamdStack:
    state = short_state_dir("mhbr")
    ports = dict(zip(portal.cfg.ports, free_ports(len(portal.cfg.ports)), strict=True))
    cfg = dataclasses.replace(portal.cfg, state_dir=state, ports=ports)
    return StockRspamdStack(cfg)


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def throughput(ctx: Ctx, *, rounds: int, per_round: int) -> dict:
    portal = ctx.stack
    stock = _stock(portal)
    stacks = {"portal": portal, "stock": stock}
    recipients = [seeded_address((i * 997) % ctx.mailboxes) for i in range(RECIPIENTS)]
    samples: dict[str, list[dict]] = {name: [] for name in stacks}
    latencies: dict[str, list[float]] = {name: [] for name in stacks}
    try:
        # The stock stack serves the same rows (homes included: both deliver into the node's
        # maildirs, one after the other): the lookup store copied with SQLite's backup API.
        stock.prepare()
        with sqlite3.connect(portal.cfg.lookup_db) as source, \
                sqlite3.connect(stock.cfg.lookup_db) as target:
            source.backup(target)
        stock.start()
        homes = _homes(portal, recipients)
        runs = {}
        for name, stack in stacks.items():
            _serve_sender_zone(stack)
            runs[name] = Round(stack, homes, recipients)
        for run in runs.values():
            run.warm_up()
        for i in range(rounds):
            order = list(runs) if i % 2 == 0 else list(reversed(runs))
            for name in order:
                seconds = runs[name].run(per_round, i * per_round, latencies[name])
                samples[name].append({"messages": per_round, "seconds": round(seconds, 3),
                                      "per_second": round(per_round / seconds, 1)})
        rss = {name: rspamd_rss_mb(stack) for name, stack in stacks.items()}
    finally:
        stock.stop()
        shutil.rmtree(stock.cfg.state_dir, ignore_errors=True)
        for stack in stacks.values():
            stack.cfg.path(f"{FIXTURE_ZONES_DIR}/bench-sender.conf").unlink(missing_ok=True)
    rate = {name: sum(s["messages"] for s in rows) / sum(s["seconds"] for s in rows)
            for name, rows in samples.items()}
    p95 = {name: round(_pct(values, 0.95), 1) for name, values in latencies.items()}
    p50 = {name: round(statistics.median(values) * 1000, 1) for name, values in latencies.items()}
    return {
        "messages_per_config": rounds * per_round,
        "connections": CONNECTIONS,
        "portal_per_second": round(rate["portal"], 1),
        "stock_per_second": round(rate["stock"], 1),
        "ratio": round(rate["portal"] / rate["stock"], 3),
        "data_ms_p50": p50,
        "data_ms_p95": p95,
        "added_ms_p95": round(p95["portal"] - p95["stock"], 1),
        "rspamd_rss_mb": rss,
        "rounds": samples,
    }


def _homes(portal: Stack, recipients: list[str]) -> list[Path]:
    marks = ",".join("?" * len(recipients))
    with sqlite3.connect(portal.cfg.lookup_db) as db:
        query = f"SELECT address, home FROM mailboxes WHERE address IN ({marks})"  # noqa: S608
        homes = dict(db.execute(query, recipients))
    if len(homes) != len(recipients):
        raise BenchError("B8: some recipients are not in the node's lookup store")
    return [Path(homes[r]) for r in recipients]
