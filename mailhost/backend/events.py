"""The node's event agent: what became of every message the send API handed to Postfix.

Run by the stack runner as `python -m mailhost.backend.events --config <file>` (rendered by
mailhost.backend.config). Two inputs, one SQLite file of events on the node (events/):

* **Postfix's log** (`maillog_file`). Every `interval_seconds` the agent reads the lines added
  since its last round. A message the send API injected has the envelope sender
  `bounces+<message id>@<domain>` (VERP), so qmgr's `from=` line ties its queue id to the
  message; each `to=` line for that queue id is then an event (sent → delivered, deferred,
  bounced), with the remote reply, host and DSN code (a deferral also with its next attempt,
  `next_attempt`); qmgr's `status=expired` expires what is left; the smtp client's "TLS
  connection established" line (same process, just before) says which TLS was used. The
  position in the log is stored with the events it produced, in one transaction: killed at
  any point, the agent restarts where the last commit left it, so no event is lost or
  recorded twice. A rotated log (new inode, or shorter) is read from its start; a line still
  being written waits for its newline.
* **TLS outcomes** (same log, same transaction). Every attempt toward a recipient domain that
  failed for TLS (any message, not only the API's) is kept as a TLS failure: domain, MX host
  and address, the policy Postfix applied (PolicyLookup) and the RFC 8460 result type
  (mailhost/backend/tls_policy.py); TLS sessions that succeeded are counted per day and
  domain. Together they are what a TLS-RPT report (RFC 8460) is built from.
* **Delivery counters** (same log, same transaction): every `to=` line, of any message, counts
  one attempt by delivery agent (smtp, lmtp, …) and outcome (sent, deferred, bounced, expired)
  in `counters`, which only grows; the portal's /metrics reads it (status/node_metrics.py).
* **SMTP and sendmail submissions.** A message submitted with SMTP AUTH (smtpd's
  `sasl_username=` line) or by `sendmail` on the host (pickup's `uid=` line) has no VERP
  sender: at qmgr's first `from=` line it gets a message id of its own and a `queued` event
  (source `sub`) carrying the sender, the login, the Message-ID and the size, from which the
  portal records the message; its attempts then count like an API message's.
* **VERP bounces.** Postfix routes `bounces+<id>@<hosted domain>` to the agent over LMTP (a
  unix socket; see the transport map in config.py). Each delivery status notification is
  parsed (RFC 3464: Final-Recipient, Action, Status, Diagnostic-Code, Remote-MTA) into events
  of that message, however late it comes. While the agent is down Postfix keeps the bounce in
  its queue and retries: none is lost.

The portal collects the events (delivery.services.events), remembers the last id it took and
then deletes what it took from the node's store (`prune_forwarded`): the node keeps events only
until the portal has them (all of them while it is down), so its disk stays bounded. qmgr's
`removed` line also takes the message off the sending quotas' queued count
(mailhost.backend.quotas), and every SWEEP_SECONDS the agent forgets queued entries that
Postfix's queue does not hold (a message refused after the milter counted it). Plain Python,
SQLite and aiosmtpd: no Django.
"""

import argparse
import asyncio
import contextlib
import datetime as dt
import email
import email.policy
import functools
import grp
import json
import logging
import os
import re
import signal
import socket
import sqlite3
import sys
import uuid
from pathlib import Path

from aiosmtpd.lmtp import LMTP

from mailhost.backend import quotas
from mailhost.backend.logtail import CURSOR_SCHEMA, read_new, save_cursor
from mailhost.backend.tls_policy import (
    MTASTS_SOCKETMAP_NAME,
    parse_policy_map,
    result_type,
    sts_policy_strings,
)

logger = logging.getLogger("mailhost.events")

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT, message TEXT NOT NULL, recipient TEXT NOT NULL,
    status TEXT NOT NULL, at TEXT NOT NULL, dsn TEXT NOT NULL DEFAULT '',
    reply TEXT NOT NULL DEFAULT '', relay TEXT NOT NULL DEFAULT '',
    tls TEXT NOT NULL DEFAULT '', source TEXT NOT NULL, next_attempt TEXT NOT NULL DEFAULT '');
CREATE TABLE IF NOT EXISTS queue (queue_id TEXT PRIMARY KEY, message TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tls (pid TEXT PRIMARY KEY, detail TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS submission (queue_id TEXT PRIMARY KEY, login TEXT NOT NULL,
    via TEXT NOT NULL, message_id TEXT NOT NULL DEFAULT '');
CREATE TABLE IF NOT EXISTS tls_notes (pid TEXT PRIMARY KEY, host TEXT NOT NULL,
    detail TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tls_failures (
    id INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL, domain TEXT NOT NULL,
    mx_host TEXT NOT NULL, mx_ip TEXT NOT NULL, policy_type TEXT NOT NULL,
    policy TEXT NOT NULL, result_type TEXT NOT NULL, detail TEXT NOT NULL,
    attempt TEXT NOT NULL, UNIQUE (attempt, domain));
CREATE TABLE IF NOT EXISTS tls_sessions (
    day TEXT NOT NULL, domain TEXT NOT NULL, successes INTEGER NOT NULL,
    PRIMARY KEY (day, domain));
CREATE TABLE IF NOT EXISTS counters (
    service TEXT NOT NULL, status TEXT NOT NULL, n INTEGER NOT NULL,
    PRIMARY KEY (service, status));
""" + CURSOR_SCHEMA
STATUSES = {"sent": "delivered", "deferred": "deferred", "bounced": "bounced",
            "expired": "expired"}
VERP = re.compile(r"^bounces\+([0-9a-f]{32})@", re.IGNORECASE)
_LINE = re.compile(
    r"^(?P<time>\w{3} +\d{1,2} \d\d:\d\d:\d\d) \S+ postfix/(?P<service>[\w/.-]+)"
    r"\[(?P<pid>\d+)\]: (?P<text>.*)$"
)
_FROM = re.compile(r"^(?P<qid>[0-9A-Za-z]+): from=<(?P<sender>[^>]*)>, (?P<rest>.*)$")
_TO = re.compile(
    r"^(?P<qid>[0-9A-Za-z]+): to=<(?P<rcpt>[^>]*)>, (?:orig_to=<[^>]*>, )?"
    r"relay=(?P<relay>[^,]+), (?:.*?\bdelay=(?P<delay>[\d.]+), )?.*?"
    r"dsn=(?P<dsn>\d\.\d{1,3}\.\d{1,3}), "
    r"status=(?P<status>\w+) \((?P<reply>.*)\)$"
)
_REMOVED = re.compile(r"^(?P<qid>[0-9A-Za-z]+): removed$")
# A message submitted with SMTP AUTH (smtpd), or with sendmail on the host (pickup), and its
# Message-ID (cleanup): recorded like an API message once qmgr names its sender.
_SASL = re.compile(r"^(?P<qid>[0-9A-Za-z]+): client=.*, sasl_username=(?P<login>\S+)$")
_PICKUP = re.compile(r"^(?P<qid>[0-9A-Za-z]+): uid=(?P<uid>\d+) from=<[^>]*>$")
_MESSAGE_ID = re.compile(r"^(?P<qid>[0-9A-Za-z]+): message-id=(?P<mid>\S*)$")
_SIZE = re.compile(r"\bsize=(?P<size>\d+), nrcpt=")
_TLS = re.compile(r"^(?P<kind>\w+) TLS connection established to (?P<host>\S+): (?P<detail>.*)$")
_VERIFY_NOTE = re.compile(r"certificate verification failed for (?P<host>\S+): (?P<why>.*)$")
_RELAY = re.compile(r"^(?P<host>[^\[]+)\[(?P<ip>[^\]]+)\](?::\d+)?$")
MAX_TEXT = 1000
# Postfix's own defaults (minimal_backoff_time, maximal_backoff_time); the agent's config
# carries the node's values.
DEFAULT_BACKOFF = (300, 4000)
SWEEP_SECONDS = 60  # how often queued entries are checked against the queue
SWEEP_AFTER = 300  # a queued entry this old that Postfix does not hold is forgotten
QUEUES = ("maildrop", "incoming", "active", "deferred", "hold")  # where messages wait
# Delivery agents counted by name (anything else is "other"), so the counters stay few.
COUNTED_SERVICES = ("smtp", "lmtp", "local", "virtual", "pipe", "error", "discard", "relay")


def log_time(stamp: str, now: dt.datetime | None = None) -> str:
    """Postfix's "Dec 01 15:31:00" (local time, no year) as ISO 8601 UTC."""
    now = now or dt.datetime.now()
    parsed = dt.datetime.strptime(f"{now.year} {stamp}", "%Y %b %d %H:%M:%S")
    if parsed > now + dt.timedelta(days=1):  # a December line read in January
        parsed = parsed.replace(year=now.year - 1)
    return parsed.astimezone(dt.UTC).isoformat(timespec="seconds")


def ensure_schema(conn: sqlite3.Connection) -> None:
    conn.execute("PRAGMA journal_mode=WAL")
    conn.executescript(SCHEMA)
    if "next_attempt" not in {row[1] for row in conn.execute("PRAGMA table_info(events)")}:
        conn.execute("ALTER TABLE events ADD COLUMN next_attempt TEXT NOT NULL DEFAULT ''")


def next_attempt(at: str, delay: str | None, backoff: tuple[int, int]) -> str:
    """When Postfix tries a deferred message again, at the earliest: qmgr gives it the time it
    has spent in the queue (the log's `delay=`) as its backoff, bounded by minimal_backoff_time
    and maximal_backoff_time; the queue scan (queue_run_delay) may start it a little later."""
    low, high = backoff
    wait = min(max(float(delay or 0), low), high)
    return (dt.datetime.fromisoformat(at) + dt.timedelta(seconds=round(wait))).isoformat(
        timespec="seconds")


def _event(conn, message, recipient, status, at, *, dsn="", reply="", relay="", tls="",
           source="log", next_at="") -> None:
    conn.execute(
        "INSERT INTO events (message, recipient, status, at, dsn, reply, relay, tls, source, "
        "next_attempt) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (message, recipient.lower()[:254], status, at, dsn, reply[:MAX_TEXT], relay[:300],
         tls[:300], source, next_at),
    )


def apply_line(conn: sqlite3.Connection, line: str,
               backoff: tuple[int, int] = DEFAULT_BACKOFF,
               policy: "PolicyLookup | None" = None) -> str | None:
    """Fold one log line into the store (inside the caller's transaction); returns the queue
    id of a message that left the queue."""
    match = _LINE.match(line)
    if match is None:
        return None
    text, pid = match["text"], match["pid"]
    if found := _VERIFY_NOTE.search(text):
        conn.execute("INSERT OR REPLACE INTO tls_notes (pid, host, detail) VALUES (?, ?, ?)",
                     (pid, found["host"][:300], found["why"][:300]))
    elif found := _TLS.match(text):
        conn.execute("INSERT OR REPLACE INTO tls (pid, detail) VALUES (?, ?)",
                     (pid, f"{found['kind']} {found['detail']}"[:300]))
    elif found := _SASL.match(text):
        _submitted(conn, found["qid"], found["login"][:254], "smtp")
    elif match["service"] == "pickup" and (found := _PICKUP.match(text)):
        _submitted(conn, found["qid"], f"uid {found['uid']}", "sendmail")
    elif found := _MESSAGE_ID.match(text):
        conn.execute("UPDATE submission SET message_id = ? WHERE queue_id = ?",
                     (found["mid"][:300], found["qid"]))
    elif found := _FROM.match(text):
        verp = VERP.match(found["sender"])
        if verp:
            conn.execute("INSERT OR IGNORE INTO queue (queue_id, message) VALUES (?, ?)",
                         (found["qid"], verp.group(1).lower()))
        else:
            _first_seen(conn, found, log_time(match["time"]))
        if "status=expired" in found["rest"]:
            _expire(conn, found["qid"], log_time(match["time"]))
    elif found := _TO.match(text):
        _count_attempt(conn, match["service"], found["status"])
        if match["service"].endswith("smtp"):
            _tls_outcome(conn, found, pid, log_time(match["time"]), policy or PolicyLookup())
        _delivery_line(conn, found, pid, log_time(match["time"]), backoff)
    elif found := _REMOVED.match(text):
        conn.execute("DELETE FROM queue WHERE queue_id = ?", (found["qid"],))
        conn.execute("DELETE FROM submission WHERE queue_id = ?", (found["qid"],))
        return found["qid"]
    return None


def _count_attempt(conn, service: str, status: str) -> None:
    """Every delivery attempt Postfix logs (any message), by agent and outcome: counters that
    only grow, served by the portal's /metrics. The portal never prunes them."""
    agent = service.rpartition("/")[2]
    agent = agent if agent in COUNTED_SERVICES else "other"
    status = status if status in ("sent", "deferred", "bounced", "expired") else "other"
    conn.execute("INSERT INTO counters VALUES (?, ?, 1) ON CONFLICT (service, status) "
                 "DO UPDATE SET n = n + 1", (agent, status))


def delivery_counters(db: Path) -> dict[tuple[str, str], int]:
    """{(agent, status): attempts} since the store began; read-only, {} if there is none."""
    if not db.exists():
        return {}
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=2)
    try:
        return {(service, status): n for service, status, n in
                conn.execute("SELECT service, status, n FROM counters")}
    except sqlite3.OperationalError:  # an agent from before the counters
        return {}
    finally:
        conn.close()


def _submitted(conn, qid: str, login: str, via: str) -> None:
    conn.execute("INSERT OR IGNORE INTO submission (queue_id, login, via) VALUES (?, ?, ?)",
                 (qid, login, via))


def _first_seen(conn, found: re.Match, at: str) -> None:
    """qmgr's first `from=` for a submitted message: it gets a message id (the portal's
    Message), and a `queued` event whose reply carries what the portal records (source `sub`).
    Its later lines then count like an API message's."""
    qid = found["qid"]
    row = conn.execute("SELECT login, via, message_id FROM submission WHERE queue_id = ?",
                       (qid,)).fetchone()
    if row is None or conn.execute("SELECT 1 FROM queue WHERE queue_id = ?", (qid,)).fetchone():
        return
    message = uuid.uuid4().hex
    conn.execute("INSERT INTO queue (queue_id, message) VALUES (?, ?)", (qid, message))
    size = _SIZE.search(found["rest"])
    detail = {"sender": found["sender"].lower(), "login": row[0], "via": row[1],
              "message_id": row[2], "size": int(size["size"]) if size else 0, "queue_id": qid}
    _event(conn, message, "", "queued", at, reply=json.dumps(detail, sort_keys=True),
           source="sub")


def _delivery_line(conn, found: re.Match, pid: str, at: str, backoff: tuple[int, int]) -> None:
    row = conn.execute("SELECT message FROM queue WHERE queue_id = ?", (found["qid"],)).fetchone()
    status = STATUSES.get(found["status"])
    if row is None or status is None:
        return
    tls = ""
    if found["relay"] != "none" and status in ("delivered", "bounced"):
        tls_row = conn.execute("SELECT detail FROM tls WHERE pid = ?", (pid,)).fetchone()
        tls = tls_row[0] if tls_row else "none"
    next_at = next_attempt(at, found["delay"], backoff) if status == "deferred" else ""
    _event(conn, row[0], found["rcpt"], status, at, dsn=found["dsn"], reply=found["reply"],
           relay=found["relay"], tls=tls, next_at=next_at)


class PolicyLookup:
    """Which TLS policy Postfix applied to a recipient domain, asked where Postfix asks: the
    portal's overrides (the rendered map), then the MTA-STS resolver's socketmap (its answer
    comes from its cache), then the install-wide level."""

    def __init__(self, policy_map: Path | None = None, socketmap: Path | None = None,
                 default_level: str = "may"):
        self.policy_map, self.socketmap, self.default_level = policy_map, socketmap, default_level

    def __call__(self, domain: str) -> tuple[str, list[str]]:
        try:
            overrides = parse_policy_map(self.policy_map.read_text()) if self.policy_map else {}
        except OSError:
            overrides = {}
        if domain in overrides:
            level = overrides[domain]
            kind = "tlsa" if level.startswith("dane") else "local"
            return kind, [f"mailhost-override: {level}"]
        answer = self._sts(domain)
        if answer.startswith("OK "):
            return "sts", sts_policy_strings(answer)
        if self.default_level.startswith("dane"):
            return "tlsa", [f"mailhost-default: {self.default_level}"]
        return "no-policy-found", [f"mailhost-default: {self.default_level}"]

    def _sts(self, domain: str) -> str:
        if not self.socketmap:
            return ""
        request = f"{MTASTS_SOCKETMAP_NAME} {domain}".encode()
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(5)
                sock.connect(str(self.socketmap))
                sock.sendall(b"%d:%s," % (len(request), request))
                data = b""
                while not data.endswith(b",") and (chunk := sock.recv(4096)):
                    data += chunk
        except OSError:
            return ""
        return data.partition(b":")[2][:-1].decode(errors="replace")


def _tls_outcome(conn, found: re.Match, pid: str, at: str, policy: PolicyLookup) -> None:
    """A TLS failure toward the recipient's domain (one per attempt and domain), or a TLS
    session that succeeded (counted per day and domain): what a TLS-RPT report is built from."""
    domain = found["rcpt"].rpartition("@")[2].lower()[:253]
    relay = _RELAY.match(found["relay"])
    if not domain or relay is None:
        return
    if found["status"] == "sent":
        if conn.execute("SELECT 1 FROM tls WHERE pid = ?", (pid,)).fetchone():
            conn.execute(
                "INSERT INTO tls_sessions (day, domain, successes) VALUES (?, ?, 1) "
                "ON CONFLICT (day, domain) DO UPDATE SET successes = successes + 1",
                (at[:10], domain))
        return
    # An smtp process serves many sessions: only its note about this very host counts.
    note = conn.execute("SELECT detail FROM tls_notes WHERE pid = ? AND host = ?",
                        (pid, found["relay"])).fetchone()
    note_text = note[0] if note else ""
    if "tls" not in found["reply"].lower() and "certificate" not in found["reply"].lower():
        return
    policy_type, strings = policy(domain)
    kind = result_type(found["reply"], note_text, policy_type)
    if kind is None:
        return
    conn.execute(
        "INSERT OR IGNORE INTO tls_failures (at, domain, mx_host, mx_ip, policy_type, policy, "
        "result_type, detail, attempt) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (at, domain, relay["host"][:253], relay["ip"][:64], policy_type,
         json.dumps(strings), kind, (found["reply"] + (f"; {note_text}" if note_text else ""))
         [:MAX_TEXT], f"{found['qid']}:{pid}"),
    )


def _expire(conn, qid: str, at: str) -> None:
    row = conn.execute("SELECT message FROM queue WHERE queue_id = ?", (qid,)).fetchone()
    if row is not None:
        _event(conn, row[0], "", "expired", at, reply="the queue lifetime ran out")


def follow(log: Path, db: Path, *, max_bytes: int = 4 * 1024 * 1024,
           backoff: tuple[int, int] = DEFAULT_BACKOFF, quotas_db: Path | None = None,
           policy: PolicyLookup | None = None) -> int:
    """Fold the lines Postfix logged since the last call; returns how many lines were read.
    The position is stored with the events, in one transaction (mailhost.backend.logtail).
    Messages that left the queue come off the sending quotas' queued count (`quotas_db`)."""
    conn = sqlite3.connect(db, timeout=10)
    try:
        ensure_schema(conn)
        new = read_new(conn, log, max_bytes)
        if new is None:
            return 0
        inode, offset, complete = new
        lines = complete.decode(errors="replace").splitlines()
        with conn:
            removed = [qid for line in lines
                       if (qid := apply_line(conn, line, backoff, policy))]
            save_cursor(conn, inode, offset)
    finally:
        conn.close()
    if removed and quotas_db is not None and quotas_db.exists():
        # After the commit: a kill in between leaves an entry that the sweep forgets later.
        quota_conn = quotas.connect(quotas_db)
        try:
            with quota_conn:
                for qid in removed:
                    quotas.release(quota_conn, qid)
        finally:
            quota_conn.close()
    return len(lines)


def prune_forwarded(db: Path, up_to: int) -> int:
    """Delete the events the portal has collected (ids up to `up_to`); returns how many. Ids
    never repeat (AUTOINCREMENT), so a later event never takes a pruned one's id."""
    if not db.exists():
        return 0
    conn = sqlite3.connect(db, timeout=10)
    try:
        with conn:
            return conn.execute("DELETE FROM events WHERE id <= ?", (up_to,)).rowcount
    except sqlite3.OperationalError:  # no table yet
        return 0
    finally:
        conn.close()


def queue_ids(queue_dir: Path) -> set[str]:
    """The ids of every message in Postfix's queue (file names in its queue directories)."""
    found = set()
    for name in QUEUES:
        for _root, _dirs, files in os.walk(queue_dir / name):
            found.update(files)
    return found


def sweep(config: dict) -> int:
    """Forget queued-count entries of messages Postfix's queue does not hold."""
    if not config.get("quotas_db") or not config.get("queue_dir"):
        return 0
    return quotas.sweep_queued(Path(config["quotas_db"]), queue_ids(Path(config["queue_dir"])),
                               older_than=SWEEP_AFTER)


# --- VERP bounces ----------------------------------------------------------------------------

_ACTIONS = {"failed": "bounced", "delayed": "deferred", "delivered": "delivered",
            "relayed": "delivered", "expanded": "delivered"}


def _field(block, name: str) -> str:
    value = str(block.get(name, "") or "")
    return " ".join(value.split())


def dsn_events(raw: bytes) -> list[dict]:
    """The per-recipient results of a delivery status notification (RFC 3464); one "bounced"
    result without a recipient if the message is not a parseable DSN."""
    msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    results = []
    for part in msg.walk():
        if part.get_content_type() != "message/delivery-status":
            continue
        blocks = part.get_payload()
        for block in blocks[1:] if isinstance(blocks, list) else []:
            recipient = _field(block, "Final-Recipient").partition(";")[2].strip()
            action = _field(block, "Action").lower()
            results.append({
                "recipient": recipient, "status": _ACTIONS.get(action, "bounced"),
                "dsn": _field(block, "Status")[:20],
                "reply": _field(block, "Diagnostic-Code").partition(";")[2].strip(),
                "relay": _field(block, "Remote-MTA").partition(";")[2].strip(),
            })
    if not results:
        subject = _field(msg, "Subject") or "an unparsed bounce"
        results.append({"recipient": "", "status": "bounced", "dsn": "", "reply": subject,
                         "relay": ""})
    return results


def record_bounce(db: Path, rcpt_tos: list[str], raw: bytes) -> int:
    """Store the events of one VERP bounce for every bounces+<id>@ recipient; returns how many."""
    now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    conn = sqlite3.connect(db, timeout=10)
    count = 0
    try:
        ensure_schema(conn)
        with conn:
            for rcpt in rcpt_tos:
                verp = VERP.match(rcpt)
                if verp is None:
                    continue
                for result in dsn_events(raw):
                    _event(conn, verp.group(1).lower(), result["recipient"], result["status"],
                           now, dsn=result["dsn"], reply=result["reply"], relay=result["relay"],
                           source="dsn")
                    count += 1
        return count
    finally:
        conn.close()


class BounceHandler:
    def __init__(self, db: Path):
        self.db = db

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        if VERP.match(address) is None:
            return "550 5.1.1 only bounces+<id>@ addresses are taken here"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        try:
            record_bounce(self.db, envelope.rcpt_tos, envelope.original_content)
        except sqlite3.Error as exc:  # Postfix keeps the bounce and retries
            logger.warning("bounce not recorded: %s", exc)
            return "\r\n".join(["451 4.3.0 try again later"] * len(envelope.rcpt_tos))
        # LMTP answers once per recipient after DATA.
        return "\r\n".join(["250 2.0.0 Ok"] * len(envelope.rcpt_tos))


# --- the daemon --------------------------------------------------------------------------------


async def _serve(config: dict, stop: asyncio.Event) -> None:
    db = Path(config["events_db"])
    socket_path = Path(config["bounce_socket"])
    socket_path.unlink(missing_ok=True)
    loop = asyncio.get_running_loop()
    handler = BounceHandler(db)
    server = await loop.create_unix_server(
        lambda: LMTP(handler, hostname=config["hostname"], loop=loop), path=str(socket_path)
    )
    os.chown(socket_path, 0, grp.getgrnam(config["socket_group"]).gr_gid)
    os.chmod(socket_path, 0o660)
    log = Path(config["maillog"])
    backoff = tuple(config.get("backoff_seconds", DEFAULT_BACKOFF))
    quotas_db = Path(config["quotas_db"]) if config.get("quotas_db") else None
    policy = PolicyLookup(
        Path(config["tls_policy_map"]) if config.get("tls_policy_map") else None,
        Path(config["mtasts_socket"]) if config.get("mtasts_socket") else None,
        config.get("tls_default_level", "may"),
    )
    swept = 0.0
    try:
        while not stop.is_set():
            try:
                await loop.run_in_executor(None, functools.partial(
                    follow, log, db, backoff=backoff, quotas_db=quotas_db, policy=policy))
                if loop.time() - swept >= SWEEP_SECONDS:
                    swept = loop.time()
                    await loop.run_in_executor(None, sweep, config)
            except (OSError, sqlite3.Error) as exc:
                logger.warning("log not followed this round: %s", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), config["interval_seconds"])
    finally:
        server.close()
        socket_path.unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, type=Path)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s event-agent: %(message)s")
    config = json.loads(args.config.read_text())
    Path(config["events_db"]).parent.mkdir(parents=True, exist_ok=True)
    pid_file = Path(config["pid_file"])
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    pid_file.write_text(f"{os.getpid()}\n")

    async def run() -> None:
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await _serve(config, stop)

    try:
        asyncio.run(run())
    finally:
        pid_file.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
