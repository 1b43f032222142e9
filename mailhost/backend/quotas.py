"""Sending quotas, enforced on the node: recipients per message, messages per hour and per day.

Why in the sender-policy milter rather than Rspamd's ratelimit module or a Postfix policy
service: the milter already sees every message the node signs, on both paths that send as a
hosted domain (SMTP submission and the loopback listener the send API and Sieve use), knows
the checked envelope sender, and answers before the message is queued; counting in SQLite
on the node needs no Redis (Rspamd's ratelimit does) and keeps working with the portal, the
database and Redis down. The limits are the portal's (written like the suppression lists);
the usage is the node's own.

Store `quotas/quotas.sqlite`:
  limits(sender_domain, scope, max_recipients, hourly, daily)  one row per sending domain and
        scope ("org:<id>" or "domain:<name>"): an organisation's limit binds all its domains
  usage(scope, period, n)   messages accepted per scope and hour ("h:<epoch hour>") or day
"""

import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

QUOTAS_DB = "quotas/quotas.sqlite"  # relative to the state directory
SCHEMA = """
CREATE TABLE IF NOT EXISTS limits (
    sender_domain TEXT NOT NULL, scope TEXT NOT NULL, max_recipients INTEGER,
    hourly INTEGER, daily INTEGER, PRIMARY KEY (sender_domain, scope));
CREATE TABLE IF NOT EXISTS usage (
    scope TEXT NOT NULL, period TEXT NOT NULL, n INTEGER NOT NULL, PRIMARY KEY (scope, period));
"""
KEEP_SECONDS = 2 * 86400


@dataclass(frozen=True)
class OverQuota(Exception):
    code: str  # "451" or "550"
    status: str  # "4.7.1" or "5.7.1"
    text: str
    retry_after: int = 0


def connect(path: Path) -> sqlite3.Connection:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=10, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.executescript(SCHEMA)
    return conn


def replace_limits(path: Path, rows: list[tuple]) -> None:
    """Make `limits` hold exactly `rows` (the portal's side), in one short transaction."""
    conn = connect(path)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("DELETE FROM limits")
        conn.executemany("INSERT INTO limits VALUES (?, ?, ?, ?, ?)", rows)
        conn.execute("COMMIT")
    finally:
        conn.close()


def _periods(now: float) -> tuple[tuple[str, int, int], ...]:
    hour, day = int(now // 3600), int(now // 86400)
    return (("hourly", f"h:{hour}", (hour + 1) * 3600 - int(now)),
            ("daily", f"d:{day}", (day + 1) * 86400 - int(now)))


def charge(path: Path, sender: str, recipients: int, now: float | None = None) -> None:
    """Count one message of `sender` with `recipients` recipients, or raise OverQuota (and
    count nothing). One write transaction: concurrent messages cannot both take the last one."""
    domain = sender.rpartition("@")[2].lower()
    if not domain or not Path(path).exists():
        return
    now = time.time() if now is None else now
    conn = connect(path)
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            limits = conn.execute(
                "SELECT scope, max_recipients, hourly, daily FROM limits WHERE sender_domain = ?",
                (domain,)).fetchall()
            for scope, max_recipients, hourly, daily in limits:
                if max_recipients is not None and recipients > max_recipients:
                    raise OverQuota("550", "5.7.1", f"at most {max_recipients} recipients per "
                                    "message may be sent from this domain")
                for (name, period, wait), limit in zip(_periods(now), (hourly, daily),
                                                       strict=True):
                    used = conn.execute("SELECT n FROM usage WHERE scope = ? AND period = ?",
                                        (scope, period)).fetchone()
                    if limit is not None and (used[0] if used else 0) + 1 > limit:
                        raise OverQuota("451", "4.7.1", f"{name} sending limit of {limit} "
                                        f"messages reached; retry in {wait} s", wait)
            for scope, *_ in limits:
                for _name, period, _wait in _periods(now):
                    conn.execute("INSERT INTO usage VALUES (?, ?, 1) ON CONFLICT (scope, period) "
                                 "DO UPDATE SET n = n + 1", (scope, period))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    finally:
        conn.close()


def usage(path: Path, scope: str, now: float | None = None) -> dict[str, int]:
    """Messages counted this hour and today for `scope` (what the domain page shows)."""
    if not Path(path).exists():
        return {"hourly": 0, "daily": 0}
    now = time.time() if now is None else now
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        out = {}
        for name, period, _ in _periods(now):
            row = conn.execute("SELECT n FROM usage WHERE scope = ? AND period = ?",
                               (scope, period)).fetchone()
            out[name] = row[0] if row else 0
        return out
    except sqlite3.OperationalError:
        return {"hourly": 0, "daily": 0}
    finally:
        conn.close()
