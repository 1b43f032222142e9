"""The node-local SQLite lookup store that Postfix and Dovecot read.

Mail runs from this file, never from the central database: delivery and login keep working
while PostgreSQL, Redis or the web tier are down. The reconciler changes rows in place, in
short transactions (never by replacing the file: long-lived smtpd and auth-worker processes
keep the old inode). WAL mode lets readers see the last commit while a write is in progress.

Tables (one row per rendered fact; `src` names the object that produced a row, so an
incremental apply can replace exactly that object's rows):
  domains(name)                                  hosted, active domains
  mailboxes(address, password, home, quota_bytes, can_login, can_receive)
  app_passwords(address, password)               extra passwords (app passwords) for a login
  aliases(address, destinations)                 'user@d' or '@d' (catch-all) → 'a@x,b@y'
  sender_logins(address, login)                  `login` may send as `address`
  role_routes(address, target)                   postmaster@d, abuse@d → where they go, unless
                                                 a mailbox or alias holds the address itself
"""

import sqlite3
from pathlib import Path

LOOKUP_DB = "lookup/lookup.sqlite"  # relative to the node's state directory

TABLES: dict[str, tuple[str, ...]] = {
    "domains": ("name",),
    "mailboxes": ("address", "password", "home", "quota_bytes", "can_login", "can_receive"),
    "app_passwords": ("address", "password"),
    "aliases": ("address", "destinations"),
    "sender_logins": ("address", "login"),
    "role_routes": ("address", "target"),
}
# How many leading columns of TABLES[table] are its primary key. The first is always the
# address (or name): the full reconcile merges the store a range of those at a time.
KEYS: dict[str, int] = {
    "domains": 1,
    "mailboxes": 1,
    "app_passwords": 2,
    "aliases": 1,
    "sender_logins": 2,
    "role_routes": 1,
}

SCHEMA = """
CREATE TABLE IF NOT EXISTS domains (
    src TEXT NOT NULL, name TEXT NOT NULL PRIMARY KEY);
CREATE TABLE IF NOT EXISTS mailboxes (
    src TEXT NOT NULL, address TEXT NOT NULL PRIMARY KEY, password TEXT NOT NULL,
    home TEXT NOT NULL, quota_bytes INTEGER NOT NULL,
    can_login INTEGER NOT NULL, can_receive INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS app_passwords (
    src TEXT NOT NULL, address TEXT NOT NULL, password TEXT NOT NULL,
    PRIMARY KEY (address, password));
CREATE TABLE IF NOT EXISTS aliases (
    src TEXT NOT NULL, address TEXT NOT NULL PRIMARY KEY, destinations TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sender_logins (
    src TEXT NOT NULL, address TEXT NOT NULL, login TEXT NOT NULL,
    PRIMARY KEY (address, login));
CREATE TABLE IF NOT EXISTS role_routes (
    src TEXT NOT NULL, address TEXT NOT NULL PRIMARY KEY, target TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS domains_src ON domains (src);
CREATE INDEX IF NOT EXISTS mailboxes_src ON mailboxes (src);
CREATE INDEX IF NOT EXISTS app_passwords_src ON app_passwords (src);
CREATE INDEX IF NOT EXISTS aliases_src ON aliases (src);
CREATE INDEX IF NOT EXISTS sender_logins_src ON sender_logins (src);
CREATE INDEX IF NOT EXISTS role_routes_src ON role_routes (src);
"""

# Whether the store still holds what a full pass last verified. `writes` counts every row
# written to a lookup table, by anyone (triggers: the reconciler, and a hand edit through the
# sqlite3 shell); a full pass that found the store equal to the rows rendered from inputs with
# digest `verified` records it with the `writes` it saw. While both still hold, the next full
# pass knows the rows without reading them (mailhost.backend.apply.LookupSync.verified).
SYNC_STATE_TABLE = """
CREATE TABLE IF NOT EXISTS sync_state (
    id INTEGER PRIMARY KEY CHECK (id = 1), writes INTEGER NOT NULL,
    verified TEXT NOT NULL DEFAULT '', verified_writes INTEGER NOT NULL DEFAULT -1);
INSERT OR IGNORE INTO sync_state (id, writes) VALUES (1, 0);
"""
WRITE_COUNTERS = "".join(
    f"CREATE TRIGGER IF NOT EXISTS {table}_{event.lower()} AFTER {event} ON {table} "  # noqa: S608
    "BEGIN UPDATE sync_state SET writes = writes + 1 WHERE id = 1; END;\n"
    for table in TABLES
    for event in ("INSERT", "UPDATE", "DELETE")
)


def connect(path: Path) -> sqlite3.Connection:
    """Open the lookup store for writing (autocommit off; callers use `with conn:`)."""
    conn = sqlite3.connect(path, timeout=30, isolation_level="DEFERRED")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


def ensure_schema(path: Path) -> None:
    """Create the store and its tables if missing. Postfix opens it read-write and creates the
    -wal/-shm files, so the directory is group postfix, setgid, group-writable (see notes)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = connect(path)
    try:
        with conn:
            conn.executescript(SCHEMA + SYNC_STATE_TABLE + WRITE_COUNTERS)
    finally:
        conn.close()
