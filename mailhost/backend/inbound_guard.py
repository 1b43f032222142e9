"""The node's inbound guard: greylisting's circuit breaker and the mail-flow counters.

Run by the stack runner as `python -m mailhost.backend.inbound_guard --config <file>` (rendered
by mailhost.backend.inbound). Every `interval_seconds`:

* **Circuit breaker.** It asks the node's resolver for the mail host's name and counts the
  messages in Postfix's deferred queue. When the resolver does not answer (timeout, SERVFAIL,
  refused) or the queue holds more than `deferred_threshold` messages, it writes every address
  into Rspamd's greylisting bypass map, so greylisting stops deferring (fails open) until both
  are healthy again: a DNS wobble must never turn greylisting into "retry every message until
  the queue jams". What it saw goes to `status_file`, which the portal's collector shows.
* **Mail-flow counters.** Rspamd logs one line per scanned message (its task log: action,
  recipients, and which module forced the action); the guard reads the lines added since its
  last round and folds them into a small SQLite file of counters per day, recipient domain and
  outcome, which is what the portal collects. The counters stay on the node while the portal
  is down. (A Lua hook in Rspamd's idempotent stage missed messages refused before it ran.)

Plain Python, SQLite and dnspython: no Django, no central database.
"""

import datetime as dt
import json
import logging
import os
import re
import sqlite3
import sys
from pathlib import Path

import dns.exception
import dns.message
import dns.query
import dns.rcode

from mailhost.backend import periodic
from mailhost.backend.logtail import CURSOR_SCHEMA, read_new, save_cursor

logger = logging.getLogger("mailhost.inbound_guard")

OPEN_MAP = "0.0.0.0/0\n::/0\n"
CLOSED_MAP = "# greylisting applies (the inbound guard's breaker is closed)\n"
OUTCOMES = ("delivered", "junked", "spam_rejected", "dmarc_rejected", "policy_rejected",
            "greylisted", "deferred")
FLOW_SCHEMA = """
CREATE TABLE IF NOT EXISTS flow (
    day TEXT NOT NULL, domain TEXT NOT NULL, outcome TEXT NOT NULL, n INTEGER NOT NULL,
    PRIMARY KEY (day, domain, outcome));
""" + CURSOR_SCHEMA
# Rspamd's task log line (its default log_format): the client, the action, the recipients and
# what forced the action ("forced: reject "…"; score=… (set by dmarc)").
_TASK = re.compile(
    r"^(?P<day>\d{4}-\d{2}-\d{2}) .*rspamd_task_write_log: .*?ip: (?P<ip>[^,]+), .*?"
    r"\(default: \w \((?P<action>[a-z ]+)\): \[.*?, rcpts: <(?P<rcpts>[^>]*)>"
    r"(?:.*?, forced: (?P<forced>[a-z ]+) .*?\(set by (?P<module>[\w-]+)\))?"
)


def outcome(record: dict) -> str:
    """What became of a message, from Rspamd's action and the module that forced it."""
    action, module = record.get("action", ""), record.get("module", "")
    if action == "reject":
        if module == "dmarc" or (record.get("dmarc_reject") and module != "force_actions"):
            return "dmarc_rejected"
        return "policy_rejected" if module == "force_actions" else "spam_rejected"
    if action == "soft reject":
        return "greylisted" if module == "greylist" or record.get("greylisted") else "deferred"
    if action in ("add header", "rewrite subject"):
        return "junked"
    return "delivered"


def dns_answers(resolver: tuple[str, int], name: str, timeout: float = 2.0) -> bool:
    """Whether the resolver answers at all: NOERROR and NXDOMAIN are answers, a timeout,
    SERVFAIL or REFUSED are not."""
    query = dns.message.make_query(name, "A")
    try:
        reply = dns.query.udp(query, resolver[0], port=resolver[1], timeout=timeout)
    except (dns.exception.DNSException, OSError):
        return False
    return reply.rcode() in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN)


def deferred_count(directory: Path) -> int:
    count = 0
    for _root, _dirs, files in os.walk(directory):
        count += len(files)
    return count


def write_if_changed(path: Path, text: str) -> bool:
    try:
        if path.read_text() == text:
            return False
    except FileNotFoundError:
        pass
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
    return True


def parse_task_line(line: str) -> tuple[str, dict, list[str]] | None:
    """(day, record for `outcome`, recipient domains) of one of Rspamd's task log lines; None
    for any other line and for loopback clients (local: not mail from the internet)."""
    match = _TASK.match(line)
    if match is None or match["ip"].startswith(("127.", "::1")):
        return None
    record = {"action": match["forced"] or match["action"], "module": match["module"] or "",
              "dmarc_reject": "DMARC_POLICY_REJECT" in line, "greylisted": "GREYLIST" in line}
    domains = sorted({rcpt.rpartition("@")[2].lower() for rcpt in match["rcpts"].split(",")
                      if "@" in rcpt})
    return match["day"], record, domains


def fold_flow(log: Path, db: Path, *, max_bytes: int = 16 * 1024 * 1024) -> int:
    """Count the task lines Rspamd logged since the last call; returns how many messages.
    The position is kept with the counters (in one transaction): a rotated log (new inode, or
    shorter than the position) is read from its start."""
    conn = sqlite3.connect(db, timeout=10)
    try:
        conn.executescript(FLOW_SCHEMA)
        new = read_new(conn, log, max_bytes)  # a line still being written waits
        if new is None:
            return 0
        inode, offset, complete = new
        counts: dict[tuple[str, str, str], int] = {}
        for raw in complete.decode(errors="replace").splitlines():
            parsed = parse_task_line(raw)
            if parsed is None:
                continue
            day, record, domains = parsed
            for domain in domains or ["(none)"]:
                key = (day, domain[:253], outcome(record))
                counts[key] = counts.get(key, 0) + 1
        with conn:
            conn.executemany(
                "INSERT INTO flow (day, domain, outcome, n) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (day, domain, outcome) DO UPDATE SET n = n + excluded.n",
                [(*key, n) for key, n in counts.items()],
            )
            save_cursor(conn, inode, offset)
        return sum(counts.values())
    finally:
        conn.close()


def read_flow(db: Path, since: str) -> list[tuple[str, str, str, int]]:
    """(day, domain, outcome, count) for every day from `since` (ISO date) on."""
    if not Path(db).exists():
        return []
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return list(conn.execute(
            "SELECT day, domain, outcome, n FROM flow WHERE day >= ? ORDER BY day, domain, outcome",
            (since,),
        ))
    except sqlite3.OperationalError:  # no table yet
        return []
    finally:
        conn.close()


class Guard:
    def __init__(self, config: dict):
        self.config = config
        self.open_since: str | None = None

    def check(self) -> dict:
        cfg = self.config
        resolver = (cfg["resolver"][0], int(cfg["resolver"][1]))
        dns_ok = dns_answers(resolver, cfg["probe_name"])
        deferred = deferred_count(Path(cfg["deferred_dir"]))
        reasons = []
        if not dns_ok:
            reasons.append("the node's resolver does not answer")
        if deferred > cfg["deferred_threshold"]:
            reasons.append(f"{deferred} messages wait in the deferred queue "
                           f"(threshold {cfg['deferred_threshold']})")
        now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        if reasons and self.open_since is None:
            self.open_since = now
            logger.warning("greylisting fails open: %s", "; ".join(reasons))
        elif not reasons and self.open_since is not None:
            self.open_since = None
            logger.info("greylisting applies again")
        write_if_changed(Path(cfg["bypass_map"]), OPEN_MAP if reasons else CLOSED_MAP)
        status = {"breaker_open": bool(reasons), "reasons": reasons, "dns_ok": dns_ok,
                  "deferred": deferred, "open_since": self.open_since, "checked_at": now}
        write_if_changed(Path(cfg["status_file"]), json.dumps(status, sort_keys=True) + "\n")
        return status

    def step(self) -> None:
        self.check()
        try:
            fold_flow(Path(self.config["rspamd_log"]), Path(self.config["flow_db"]))
        except (OSError, sqlite3.Error) as exc:
            logger.warning("mail-flow counters not updated: %s", exc)


def main(argv: list[str] | None = None) -> int:
    return periodic.run(argv, description=__doc__.splitlines()[0], log_name="inbound-guard",
                        make_step=lambda config: Guard(config).step)


if __name__ == "__main__":
    sys.exit(main())
