"""B6: mail throughput over SMTP into hosted mailboxes, portal tables vs plain static maps.

Stacks run side by side from the same binaries and the same rendered configuration: the
node's own (Postfix `sqlite:` maps and Dovecot `driver = sql` on the node-local lookup store)
and a baseline whose lookups were swapped for what a hand-configured server uses: Postfix
`hash:` maps built with postmap and a Dovecot passwd-file, exported from the same rows, with
the node's OpenDKIM KeyTable and SigningTable; and that baseline with empty OpenDKIM tables,
to show what the per-domain SigningTable costs. Rounds alternate (ABC CBA …) so drift in
machine load hits all alike. A round is timed from the first SMTP connection until every
message has landed in its Maildir (delivered over LMTP).
"""

import contextlib
import dataclasses
import os
import re
import shutil
import sqlite3
import threading
import time
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path

from bench.context import BenchError, Ctx
from bench.env import free_ports, short_state_dir
from bench.seed import seeded_address
from mailhost.backend.stack import READY_TIMEOUT, Stack, _run

CONNECTIONS = 4
RECIPIENTS = 100
SENDER = "sender@example.org"  # a foreign sender: inbound MX traffic, no AUTH
_SQLITE_MAP = re.compile(r"sqlite:\S+/postfix/sqlite-([a-z-]+)\.cf")
# The maps a hand-configured server has too, exported from the node's rows (_export_maps)…
EXPORTED_MAPS = ("domains", "mailboxes", "aliases", "sender-logins", "recipient-access", "bans")
# …and the portal's own features it has not (VERP return paths, report intake addresses,
# application senders, the forwarding transport for aliases that leave the node with SRS):
# empty there, and nothing in the benchmark's traffic uses them.
EMPTY_MAPS = ("verp", "report-intake", "app-sender-logins", "forwards")
_SQL_BLOCK = re.compile(r"(passdb|userdb) \{\n  driver = sql\n  args = [^\n]*\n\}\n")
# Dovecot's auth reads the whole passwd-file before it answers a login: at 1,000,000 users
# that may take longer than the node's own stack is given to start.
STATIC_READY_TIMEOUT = 600


class StaticMapsStack(Stack):
    """The same daemons and config, with lookups in hash: maps and a passwd-file."""

    def __init__(self, cfg, source_db: Path, source_state_dir: Path, *, dkim_tables: bool = True):
        super().__init__(cfg)
        self.source_db, self.source_state_dir = source_db, source_state_dir
        self.dkim_tables = dkim_tables
        self.swapped: list[str] = []

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        super().wait_ready(timeout=max(timeout, STATIC_READY_TIMEOUT))

    @property
    def maps_dir(self) -> Path:
        return self.cfg.path("maps")

    def write_config(self) -> list[str]:
        changed = super().write_config()
        self._export_maps()
        for table in ("KeyTable", "SigningTable") if self.dkim_tables else ():
            source = self.source_state_dir / "opendkim" / table  # the node's signing work
            shutil.copyfile(source, self.cfg.path(f"opendkim/{table}"))
        main_cf = self.cfg.path("postfix/main.cf")
        text = main_cf.read_text()
        found = _SQLITE_MAP.findall(text)
        unknown = sorted(set(found) - set(EXPORTED_MAPS) - set(EMPTY_MAPS))
        if unknown:  # a map the node gained: decide what a plain server has in its place
            raise BenchError(f"B6 does not know the main.cf map(s) {', '.join(unknown)}")
        if not set(EXPORTED_MAPS) <= set(found):
            missing = ", ".join(sorted(set(EXPORTED_MAPS) - set(found)))
            raise BenchError(f"B6 expects these sqlite maps in main.cf: {missing}")
        main_cf.write_text(_SQLITE_MAP.sub(lambda m: f"hash:{self.maps_dir}/{m[1]}", text))
        self.swapped = found  # every sqlite: reference, in main.cf's order
        past = time.time() - 3  # Postfix waits for a freshly written main.cf to "cool down"
        os.utime(main_cf, (past, past))
        conf = self.cfg.path("dovecot/dovecot.conf")
        text, count = _SQL_BLOCK.subn("", conf.read_text())
        users = self.maps_dir / "users"
        # Dovecot's auth holds the whole passwd-file in memory: ~250 MB at 1,000,000 users,
        # past its default 256 MB address-space limit (a hand-configured server raises it).
        blocks = (
            "default_vsz_limit = 2G\n"
            f"passdb {{\n  driver = passwd-file\n  args = scheme=BLF-CRYPT {users}\n}}\n"
            f"userdb {{\n  driver = passwd-file\n  args = {users}\n}}\n"
        )
        if count < 2 or "auth_verbose = yes\n" not in text:
            raise BenchError("dovecot.conf does not have the expected sql passdb/userdb blocks")
        conf.write_text(text.replace("auth_verbose = yes\n", "auth_verbose = yes\n" + blocks, 1))
        self._postfix_check()
        return [*changed, "postfix/main.cf", "dovecot/dovecot.conf"]

    def _export_maps(self) -> None:
        self.maps_dir.mkdir(exist_ok=True)
        source = self.source_state_dir
        with sqlite3.connect(self.source_db) as db:
            domains = [f"{name} OK" for (name,) in db.execute("SELECT name FROM domains")]
            boxes = list(db.execute(
                "SELECT address, password, home, quota_bytes, can_receive FROM mailboxes"
            ))
            rows = db.execute("SELECT address, destinations FROM aliases")
            aliases = [f"{a} {d}" for a, d in rows]
            logins: dict[str, list[str]] = {}
            for address, login in db.execute("SELECT address, login FROM sender_logins"):
                logins.setdefault(address, []).append(login)
        maps = {
            "domains": domains,
            "mailboxes": [f"{a} OK" for a, _, _, _, receive in boxes if receive],
            "aliases": aliases + [f"{a} {a}" for a, *_ in boxes],
            "sender-logins": [f"{a} {','.join(v)}" for a, v in logins.items()],
            "recipient-access": [
                f"{a} 550 5.2.1 Mailbox disabled" for a, _, _, _, receive in boxes if not receive
            ],
            "bans": [],  # nobody is banned during the benchmark
            **{name: [] for name in EMPTY_MAPS},
        }
        for name, lines in maps.items():
            path = self.maps_dir / name
            path.write_text("".join(f"{line}\n" for line in lines))
            _run(["postmap", "-c", str(self.cfg.path("postfix")), f"hash:{path}"], what="postmap")
        own = self.cfg.state_dir
        users = [
            f"{a}:{p}:8:8::{home_dir(own, h, source)}::userdb_quota_rule=*:bytes={q}\n"
            for a, p, h, q, receive in boxes if receive
        ]
        (self.maps_dir / "users").write_text("".join(users))


def home_dir(state_dir: Path, home: str, source_state_dir: Path) -> Path:
    """A lookup row's home under `state_dir`, as Dovecot's user_query reads it: a home id
    under mail/, or (older rows) an absolute path under the source node's state dir."""
    if home.startswith("/"):
        return state_dir / Path(home).relative_to(source_state_dir)
    return state_dir / "mail" / home


def _message(recipient: str, index: int) -> bytes:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = SENDER, recipient, f"bench {index}"
    msg["Message-ID"], msg["Date"] = make_msgid(domain="bench.test"), formatdate()
    msg.set_content("Throughput test line, padding the message to about two kB.\n" * 32)
    return msg.as_bytes()


class Round:
    def __init__(self, stack: Stack, homes: list[Path], recipients: list[str]):
        self.stack, self.homes, self.recipients = stack, homes, recipients

    def delivered(self) -> int:
        total = 0
        for home in self.homes:
            with contextlib.suppress(FileNotFoundError):
                total += len(os.listdir(home / "Maildir" / "new"))
        return total

    def run(self, count: int, offset: int) -> float:
        before = self.delivered()
        rcpts = [self.recipients[(offset + i) % len(self.recipients)] for i in range(count)]
        jobs = [(rcpt, _message(rcpt, offset + i)) for i, rcpt in enumerate(rcpts)]
        errors: list[BaseException] = []

        def send(part):
            from bench.clients import smtp_batch

            try:
                if smtp_batch(self.stack.address("smtp"), SENDER, part) != len(part):
                    errors.append(BenchError("a message was refused"))
            except Exception as exc:  # reported below, with the daemons' logs
                errors.append(exc)

        threads = [
            threading.Thread(target=send, args=(jobs[i::CONNECTIONS],)) for i in range(CONNECTIONS)
        ]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise BenchError(f"SMTP send failed: {errors[0]!r}\n{self.stack.log_tails()}")
        deadline = time.monotonic() + 300
        while self.delivered() < before + count:
            if time.monotonic() > deadline:
                raise BenchError(
                    f"only {self.delivered() - before}/{count} delivered after 300 s\n"
                    f"{self.stack.log_tails()}"
                )
            time.sleep(0.01)
        return time.perf_counter() - started


def _baseline(portal: Stack, *, dkim_tables: bool) -> StaticMapsStack:
    state = short_state_dir("mhbs")
    ports = dict(zip(portal.cfg.ports, free_ports(len(portal.cfg.ports)), strict=True))
    cfg = dataclasses.replace(portal.cfg, state_dir=state, ports=ports)
    return StaticMapsStack(cfg, portal.cfg.lookup_db, portal.cfg.state_dir, dkim_tables=dkim_tables)


def throughput(ctx: Ctx, *, rounds: int, per_round: int) -> dict:
    """Configurations: `portal` (the node), `baseline` (static maps, the same OpenDKIM tables)
    and `baseline_no_dkim_tables` (static maps, empty SigningTable: what OpenDKIM's per-domain
    table costs). The target is portal / baseline."""
    portal = ctx.stack
    stacks = {"portal": portal, "baseline": _baseline(portal, dkim_tables=True),
              "baseline_no_dkim_tables": _baseline(portal, dkim_tables=False)}
    recipients = [seeded_address((i * 997) % ctx.mailboxes) for i in range(RECIPIENTS)]
    marks = ",".join("?" * len(recipients))
    with sqlite3.connect(portal.cfg.lookup_db) as db:
        query = f"SELECT address, home FROM mailboxes WHERE address IN ({marks})"  # noqa: S608
        homes = dict(db.execute(query, recipients))
    if len(homes) != len(recipients):
        raise BenchError("B6: some recipients are not in the node's lookup store")
    own = portal.cfg.state_dir
    runs = {
        name: Round(stack, [home_dir(stack.cfg.state_dir, homes[r], own)
                            for r in recipients], recipients)
        for name, stack in stacks.items()
    }
    samples: dict[str, list[dict]] = {name: [] for name in stacks}
    try:
        for name, stack in stacks.items():
            if name != "portal":
                stack.start()
        for run in runs.values():  # warm-up: maildirs created, processes spawned
            run.run(2 * CONNECTIONS, offset=10_000)
        for i in range(rounds):
            order = list(runs) if i % 2 == 0 else list(reversed(runs))  # ABC CBA …
            for name in order:
                seconds = runs[name].run(per_round, offset=i * per_round)
                samples[name].append(
                    {"messages": per_round, "seconds": round(seconds, 3),
                     "per_second": round(per_round / seconds, 1)}
                )
    finally:
        for name, stack in stacks.items():
            if name != "portal":
                stack.stop()
                shutil.rmtree(stack.cfg.state_dir, ignore_errors=True)
    rate = {name: sum(s["messages"] for s in rows) / sum(s["seconds"] for s in rows)
            for name, rows in samples.items()}
    return {
        "mailboxes": ctx.mailboxes,
        "domains": ctx.domains,
        "messages_per_config": rounds * per_round,
        "connections": CONNECTIONS,
        "recipients": RECIPIENTS,
        # main.cf's sqlite: references the baselines swapped for hash: maps (a map can be
        # named twice: report-intake is both a mailbox map and a transport map).
        "swapped_maps": len(stacks["baseline"].swapped),
        "swapped_map_names": sorted(set(stacks["baseline"].swapped)),
        "portal_per_second": round(rate["portal"], 1),
        "baseline_per_second": round(rate["baseline"], 1),
        "baseline_no_dkim_tables_per_second": round(rate["baseline_no_dkim_tables"], 1),
        "ratio": round(rate["portal"] / rate["baseline"], 3),
        "dkim_tables_ratio": round(rate["baseline"] / rate["baseline_no_dkim_tables"], 3),
        "rounds": samples,
    }
