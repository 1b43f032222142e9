"""B1 (create → live), B2 (password rotation → live) and B7 (B1 with rebuild-everything).

Each sample: one API call over HTTP to gunicorn; from the moment its response has arrived, IMAP
LOGIN attempts start every 5 ms (see bench.imap: a race, so Dovecot's 500 ms failure tick does
not blur the result) until one succeeds. `live_ms` is API response → that LOGIN's OK. For a
breakdown, the node's lookup store is also read every 2 ms: `row_ms` is when the row the
reconciler writes became visible there. Between samples the runner waits until the node is
idle, so samples do not coalesce.
"""

import sqlite3
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass

from bench.context import BenchError, Ctx
from bench.seed import PASSWORD, domain_name, seeded_address
from bench.stats import ms, summary


class RowWatch:
    """Polls the node's lookup store (read-only, WAL) for the moment a condition holds."""

    def __init__(self, ctx: Ctx, sql: str, args: tuple, holds, *, lookup_db=None):
        lookup_db = lookup_db or ctx.stack.cfg.lookup_db
        self.db = sqlite3.connect(f"file:{lookup_db}?mode=ro", uri=True)
        self.sql, self.args, self.holds = sql, args, holds
        self.seen_at: float | None = None
        self.last = 0.0

    def __call__(self, now: float) -> None:
        if self.seen_at is None and now - self.last >= 0.002:
            self.last = now
            row = self.db.execute(self.sql, self.args).fetchone()
            if self.holds(row):
                self.seen_at = time.perf_counter()

    def close(self) -> None:
        self.db.close()


def _login_cost(probe, address: str, password: str, n: int = 10) -> list[float]:
    costs = []
    for _ in range(n):
        started = time.perf_counter()
        if not probe.login(address, password):
            raise BenchError(f"{address} stopped logging in")
        costs.append(ms(time.perf_counter() - started))
    return costs


@dataclass
class Node:
    """Where create → live is measured: the node's IMAP probe and lookup store, the domains
    of its that get the new mailboxes, and a wait until the node is idle."""

    probe: object  # bench.imap.ImapRace
    lookup_db: object  # Path
    domains: list[str]
    settle: Callable[[], None]
    mailboxes: int


def bench_node(ctx: Ctx) -> Node:
    """The bench's own node, with every seeded domain."""
    return Node(ctx.probe, ctx.stack.cfg.lookup_db,
                [domain_name(i) for i in range(ctx.domains)], ctx.settle, ctx.mailboxes)


def create_live(ctx: Ctx, *, tag: str, samples: int, timeout: float = 30.0,
                node: Node | None = None) -> dict:
    """POST /mailboxes (generated password) → first successful IMAP LOGIN, on the bench's
    node or on `node`."""
    node = node or bench_node(ctx)
    api_ms, live_ms, row_ms, attempts = [], [], [], []
    address = password = None
    for i in range(samples):
        address = f"{tag}{i:03d}@{node.domains[(i * 37) % len(node.domains)]}"
        watch = RowWatch(ctx, "SELECT can_login FROM mailboxes WHERE address = ?", (address,),
                         lambda row: row is not None and row[0] == 1, lookup_db=node.lookup_db)
        try:
            status, body, elapsed = ctx.api.request("POST", "/mailboxes", {"address": address})
            answered = time.perf_counter()
            if status != 201:
                raise BenchError(f"POST /mailboxes {address}: {status} {body}")
            password = body["password"]
            race = node.probe.run(address, password, start=answered, timeout=timeout,
                                  on_tick=watch)
        finally:
            watch.close()
        api_ms.append(ms(elapsed))
        live_ms.append(ms(race.ok_at - answered))
        row_ms.append(ms(watch.seen_at - answered) if watch.seen_at else None)
        attempts.append(race.attempts)
        node.settle()
        time.sleep(0.05)
    return {
        "mailboxes": node.mailboxes,
        "domains": len(node.domains),
        "live_ms": summary(live_ms),
        "row_visible_ms": summary([x for x in row_ms if x is not None]),
        "api_ms": summary(api_ms),
        "attempts": summary(attempts),
        "imap_login_ms": summary(_login_cost(node.probe, address, password)),
        "samples": {"live_ms": live_ms, "row_visible_ms": row_ms, "api_ms": api_ms,
                    "attempts": attempts},
    }


def _rotation_targets(ctx: Ctx, samples: int) -> list[str]:
    """Seeded mailboxes (still on the seed password) spread over every domain of this size."""
    found, step, index = [], 7919, 13
    while len(found) < samples:
        index = (index + step) % ctx.mailboxes
        address = seeded_address(index)
        if address not in ctx.used_addresses:
            ctx.used_addresses.add(address)
            found.append(address)
    return found


def rotate_live(ctx: Ctx, *, samples: int, timeout: float = 30.0) -> dict:
    """POST /mailboxes/{a}/password (generated) → the new password logs in, and a LOGIN with
    the old one started right then is refused. `refusal_reply_ms` is how long Dovecot took to
    say so (its failure tick), reported apart: it is not time the old password still works."""
    api_ms, live_ms, row_ms, refusal_ms = [], [], [], []
    old_hash = ctx.tenant.password_hash
    for address in _rotation_targets(ctx, samples):
        if not ctx.probe.login(address, PASSWORD):
            raise BenchError(f"{address} does not log in with the seed password before rotation")
        watch = RowWatch(ctx, "SELECT password FROM mailboxes WHERE address = ?", (address,),
                         lambda row: row is not None and row[0] != old_hash)
        path = f"/mailboxes/{urllib.parse.quote(address)}/password"
        try:
            status, body, elapsed = ctx.api.request("POST", path)
            answered = time.perf_counter()
            if status != 200:
                raise BenchError(f"POST {path}: {status} {body}")
            race = ctx.probe.run(address, body["password"], start=answered, timeout=timeout,
                                 on_tick=watch)
        finally:
            watch.close()
        refused_from = time.perf_counter()
        if ctx.probe.login(address, PASSWORD):
            raise BenchError(f"{address}: the old password still works after the new one did")
        refusal_ms.append(ms(time.perf_counter() - refused_from))
        api_ms.append(ms(elapsed))
        live_ms.append(ms(race.ok_at - answered))
        row_ms.append(ms(watch.seen_at - answered) if watch.seen_at else None)
        ctx.settle()
        time.sleep(0.05)
    return {
        "mailboxes": ctx.mailboxes,
        "domains": ctx.domains,
        "live_ms": summary(live_ms),
        "row_visible_ms": summary([x for x in row_ms if x is not None]),
        "api_ms": summary(api_ms),
        "refusal_reply_ms": summary(refusal_ms),
        "samples": {"live_ms": live_ms, "row_visible_ms": row_ms, "api_ms": api_ms,
                    "refusal_reply_ms": refusal_ms},
    }
