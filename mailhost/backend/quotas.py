"""Sending quotas, enforced on the node: recipients per message, messages per hour and per
day, messages waiting in the queue, and each login's (authenticated mailbox or application
sender) hourly and daily rate.

Why in the sender-policy milter rather than Rspamd's ratelimit module or a Postfix policy
service: the milter already sees every message the node signs, on both paths that send as a
hosted domain (SMTP submission and the loopback listener the send API and Sieve use), knows
the checked envelope sender and the SASL login, and answers before the message is queued;
counting in SQLite on the node needs no Redis (Rspamd's ratelimit does) and keeps working with
the portal, the database and Redis down. The limits are the portal's (applied by the
reconciler, mailhost.backend.outbound); the usage is the node's own.

Store `quotas/quotas.sqlite`:
  limits(sender_domain, scope, max_recipients, hourly, daily, max_queued, login_hourly,
         login_daily)  one row per sending domain and scope ("org:<id>" or "domain:<name>"):
        an organisation's limit binds all its domains; login_* bind each login sending as them
  usage(scope, period, n)   messages accepted per scope (or "login:<login>") and hour
        ("h:<epoch hour>") or day ("d:<epoch day>"); periods before yesterday are pruned
  queued(queue_id, scope, at)   messages accepted and not yet removed from Postfix's queue:
        the milter adds them, the event agent removes them at qmgr's `removed` line and sweeps
        out those Postfix never queued (refused later, connection dropped)
  refusals(scope, reason, n)   messages the limits refused, per scope and reason (recipients,
        hourly, daily, login_hourly, login_daily, queued), since the store began: a counter
        (/metrics), never pruned and bounded by scopes x reasons; today's refusals also go to
        usage as scope "refused:<scope>", so the domain page's figure ages out like the rest
"""

import logging
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger("mailhost.quotas")

QUOTAS_DB = "quotas/quotas.sqlite"  # relative to the state directory
LIMIT_COLUMNS = ("sender_domain", "scope", "max_recipients", "hourly", "daily", "max_queued",
                 "login_hourly", "login_daily")
SCHEMA = """
CREATE TABLE IF NOT EXISTS limits (
    sender_domain TEXT NOT NULL, scope TEXT NOT NULL, max_recipients INTEGER,
    hourly INTEGER, daily INTEGER, PRIMARY KEY (sender_domain, scope));
CREATE TABLE IF NOT EXISTS usage (
    scope TEXT NOT NULL, period TEXT NOT NULL, n INTEGER NOT NULL, PRIMARY KEY (scope, period));
CREATE TABLE IF NOT EXISTS queued (
    queue_id TEXT NOT NULL, scope TEXT NOT NULL, at INTEGER NOT NULL,
    PRIMARY KEY (queue_id, scope));
CREATE INDEX IF NOT EXISTS queued_scope ON queued (scope);
CREATE TABLE IF NOT EXISTS refusals (
    scope TEXT NOT NULL, reason TEXT NOT NULL, n INTEGER NOT NULL, PRIMARY KEY (scope, reason));
"""
REFUSAL_REASONS = ("recipients", "hourly", "daily", "login_hourly", "login_daily", "queued")
ADDED_COLUMNS = ("max_queued", "login_hourly", "login_daily")  # absent from older stores
QUEUED_RETRY_SECONDS = 60  # what a full queue tells the sender (and the API's Retry-After)


@dataclass(frozen=True)
class OverQuota(Exception):
    code: str  # "451" or "550"
    status: str  # "4.7.1" or "5.7.1"
    text: str
    retry_after: int = 0
    scope: str = ""  # the limit's scope ("org:<id>", "domain:<name>")
    reason: str = ""  # one of REFUSAL_REASONS


def connect(path: Path) -> sqlite3.Connection:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=10, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.executescript(SCHEMA)
    have = {row[1] for row in conn.execute("PRAGMA table_info(limits)")}
    for column in ADDED_COLUMNS:
        if column not in have:
            conn.execute(f"ALTER TABLE limits ADD COLUMN {column} INTEGER")
    return conn


def _periods(now: float) -> tuple[tuple[str, str, int], ...]:
    hour, day = int(now // 3600), int(now // 86400)
    return (("hourly", f"h:{hour}", (hour + 1) * 3600 - int(now)),
            ("daily", f"d:{day}", (day + 1) * 86400 - int(now)))


def _used(conn, scope: str, period: str) -> int:
    row = conn.execute("SELECT n FROM usage WHERE scope = ? AND period = ?",
                       (scope, period)).fetchone()
    return row[0] if row else 0


def _check(conn, scope: str, limits: tuple, recipients: int, login: str | None,
           now: float) -> None:
    max_recipients, hourly, daily, max_queued, login_hourly, login_daily = limits
    if max_recipients is not None and recipients > max_recipients:
        raise OverQuota("550", "5.7.1", f"at most {max_recipients} recipients per "
                        "message may be sent from this domain", 0, scope, "recipients")
    for (name, period, wait), limit in zip(_periods(now), (hourly, daily), strict=True):
        if limit is not None and _used(conn, scope, period) + 1 > limit:
            raise OverQuota("451", "4.7.1", f"{name} sending limit of {limit} "
                            f"messages reached; retry in {wait} s", wait, scope, name)
    if login:
        for (name, period, wait), limit in zip(_periods(now), (login_hourly, login_daily),
                                               strict=True):
            if limit is not None and _used(conn, f"login:{login}", period) + 1 > limit:
                raise OverQuota("451", "4.7.1", f"{name} sending limit of {limit} messages "
                                f"per login reached for {login}; retry in {wait} s", wait,
                                scope, f"login_{name}")
    if max_queued is not None:
        waiting = conn.execute("SELECT count(*) FROM queued WHERE scope = ?",
                               (scope,)).fetchone()[0]
        if waiting + 1 > max_queued:
            raise OverQuota("451", "4.7.1", f"queued messages limit of {max_queued} reached "
                            f"({waiting} waiting); retry in {QUEUED_RETRY_SECONDS} s",
                            QUEUED_RETRY_SECONDS, scope, "queued")


def charge(path: Path, sender: str, recipients: int, now: float | None = None, *,
           login: str | None = None, queue_id: str | None = None) -> None:
    """Count one message of `sender` (submitted by `login`, queued as `queue_id`) with
    `recipients` recipients, or raise OverQuota (and count nothing). One write transaction:
    concurrent messages cannot both take the last one."""
    domain = sender.rpartition("@")[2].lower()
    if not domain or not Path(path).exists():
        return
    now = time.time() if now is None else now
    login = login.lower() if login else None
    conn = connect(path)
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            limits = conn.execute(
                "SELECT scope, max_recipients, hourly, daily, max_queued, login_hourly, "
                "login_daily FROM limits WHERE sender_domain = ?", (domain,)).fetchall()
            for scope, *values in limits:
                _check(conn, scope, tuple(values), recipients, login, now)
            counted = [scope for scope, *_ in limits]
            if limits and login:
                counted.append(f"login:{login}")
            for scope in counted:
                for _name, period, _wait in _periods(now):
                    conn.execute("INSERT INTO usage VALUES (?, ?, 1) ON CONFLICT (scope, period) "
                                 "DO UPDATE SET n = n + 1", (scope, period))
            if queue_id:
                conn.executemany("INSERT OR IGNORE INTO queued VALUES (?, ?, ?)",
                                 [(queue_id, scope, int(now)) for scope, *_ in limits])
            _prune(conn, now)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    except OverQuota as over:
        _count_refusal(conn, over, now)
        raise
    finally:
        conn.close()


def _count_refusal(conn, over: OverQuota, now: float) -> None:
    """After the refused charge rolled back: the refusal itself is counted (its own write).
    A store too busy to count it loses the count, never the refusal's own answer."""
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute("INSERT INTO refusals VALUES (?, ?, 1) ON CONFLICT (scope, reason) "
                         "DO UPDATE SET n = n + 1", (over.scope, over.reason))
            conn.execute("INSERT INTO usage VALUES (?, ?, 1) ON CONFLICT (scope, period) "
                         "DO UPDATE SET n = n + 1",
                         (f"refused:{over.scope}", _periods(now)[1][1]))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    except sqlite3.Error:
        logger.warning("a %s refusal of %s was not counted", over.reason, over.scope,
                       exc_info=True)


def _prune(conn, now: float) -> None:
    """Usage periods before yesterday are never read again."""
    hour, day = int(now // 3600), int(now // 86400)
    conn.execute("DELETE FROM usage WHERE (period LIKE 'h:%' AND CAST(substr(period, 3) AS "
                 "INTEGER) < ?) OR (period LIKE 'd:%' AND CAST(substr(period, 3) AS INTEGER) < ?)",
                 (hour - 24, day - 1))


def release(conn: sqlite3.Connection, queue_id: str) -> None:
    """The message left Postfix's queue (delivered, bounced, expired or deleted)."""
    conn.execute("DELETE FROM queued WHERE queue_id = ?", (queue_id,))


def sweep_queued(path: Path, in_queue: Iterable[str], *, older_than: float,
                 now: float | None = None) -> int:
    """Forget queued entries older than `older_than` seconds that Postfix's queue does not
    hold (`in_queue`: its queue ids now); returns how many."""
    if not Path(path).exists():
        return 0
    now = time.time() if now is None else now
    live = set(in_queue)
    conn = connect(path)
    try:
        old = [qid for (qid,) in conn.execute("SELECT DISTINCT queue_id FROM queued WHERE at < ?",
                                              (int(now - older_than),))]
        gone = [(qid,) for qid in old if qid not in live]
        with conn:
            conn.executemany("DELETE FROM queued WHERE queue_id = ?", gone)
        return len(gone)
    finally:
        conn.close()


def usage(path: Path, scope: str, now: float | None = None) -> dict[str, int]:
    """Messages counted this hour and today for `scope`, those of it in the queue now, and
    those its limits refused today (what the domain page and the API show)."""
    empty = {"hourly": 0, "daily": 0, "queued": 0, "refused": 0}
    if not Path(path).exists():
        return empty
    now = time.time() if now is None else now
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        out = {name: _used(conn, scope, period) for name, period, _ in _periods(now)}
        out["queued"] = conn.execute("SELECT count(*) FROM queued WHERE scope = ?",
                                     (scope,)).fetchone()[0]
        out["refused"] = _used(conn, f"refused:{scope}", _periods(now)[1][1])
        return out
    except sqlite3.OperationalError:
        return empty
    finally:
        conn.close()


def refusals(path: Path) -> dict[tuple[str, str], int]:
    """{(scope, reason): messages refused} since the store began (for /metrics)."""
    if not Path(path).exists():
        return {}
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        return {(scope, reason): n for scope, reason, n in
                conn.execute("SELECT scope, reason, n FROM refusals")}
    except sqlite3.OperationalError:  # a store from before refusals were counted
        return {}
    finally:
        conn.close()
