"""Encryption at rest of stored mail: Dovecot's mail_crypt plugin with one key pair per
organisation (the portal's `mailcrypt` app makes and wraps the keys).

The plugin is loaded for every user; what it does for a user comes from the userdb. A second
userdb (after the mailboxes' one, which alone decides whether the user exists) reads this
node-local store by the login's domain:

  mail_crypt_keys(domain, private_key, public_key, save_version)

  - a domain of an organisation that encrypts: both keys (base64 of the PEM, the form the
    plugin takes from a userdb) and save_version 2: new mail is written encrypted;
  - a domain of an organisation that stopped: the same keys and save_version 0: new mail is
    written plain, and what was encrypted before stays readable;
  - every other domain: no row, so no key and the global save_version 0: plain mail.

The store is root's alone (directory 0700, file 0600): Dovecot's auth-worker, which runs the
sql userdbs, is root, and the mail processes get the keys over the auth socket. Like the
lookup store it is changed in place, never replaced (auth-workers keep the file open), and the
node serves from it with the portal down.
"""

import re
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from mailhost.backend.stores import write_transaction

MAIL_CRYPT_DB = "mailcrypt/keys.sqlite"  # relative to the state directory
USERDB_CONF = "dovecot/sql-mailcrypt-userdb.conf.ext"
SAVE_ENCRYPTED = 2  # mail_crypt_save_version: the current dcrypt format
SAVE_PLAIN = 0  # read only: decrypts what is encrypted, writes plain

SCHEMA = """
CREATE TABLE IF NOT EXISTS mail_crypt_keys (
    domain TEXT NOT NULL PRIMARY KEY, private_key TEXT NOT NULL, public_key TEXT NOT NULL,
    save_version INTEGER NOT NULL);
"""
COLUMNS = ("domain", "private_key", "public_key", "save_version")
# The store is the userdb's second source: it only adds the plugin's settings to a user the
# mailboxes' userdb found. %d is the login's domain (auth_username_format lower-cases it).
USER_QUERY = (
    "SELECT private_key AS mail_crypt_global_private_key, "
    "public_key AS mail_crypt_global_public_key, "
    "save_version AS mail_crypt_save_version "
    "FROM mail_crypt_keys WHERE domain = '%d'"
)
# Domains are not users: `doveadm … -A` must iterate the mailboxes alone.
ITERATE_QUERY = "SELECT domain AS user FROM mail_crypt_keys WHERE 0"

_DOMAIN = re.compile(r"^[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?$")
_BASE64 = re.compile(r"^[A-Za-z0-9+/]+={0,2}$")


class UnsafeKeyValue(ValueError):
    """A value that must never reach the key store."""


@dataclass(frozen=True)
class MailCryptKeySnap:
    """One domain's key pair (base64 of the PEM) and whether new mail is encrypted."""

    domain: str
    private_key_b64: str
    public_key_b64: str
    encrypt: bool

    def row(self) -> tuple[str, str, str, int]:
        if not _DOMAIN.fullmatch(self.domain) or ".." in self.domain:
            raise UnsafeKeyValue(f"refusing to store a key for domain {self.domain!r}")
        for value in (self.private_key_b64, self.public_key_b64):
            if not _BASE64.fullmatch(value):
                raise UnsafeKeyValue(f"the key of {self.domain!r} is not base64")
        version = SAVE_ENCRYPTED if self.encrypt else SAVE_PLAIN
        return (self.domain, self.private_key_b64, self.public_key_b64, version)


def render_rows(keys: list[MailCryptKeySnap]) -> set[tuple]:
    return {key.row() for key in keys}


def connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=30, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.executescript(SCHEMA)
    return conn


def ensure_store(path: Path) -> None:
    """The store with its schema, root's alone (the directory made by the stack runner)."""
    conn = connect(path)
    conn.close()
    for file in (path, *(path.with_name(path.name + s) for s in ("-wal", "-shm"))):
        if file.exists():
            file.chmod(0o600)


@dataclass
class KeyDiff:
    added: set[str]  # domains whose row is new or changed
    removed: set[str]  # domains whose row left

    @property
    def count(self) -> int:
        return len(self.added) + len(self.removed)

    def describe(self) -> list[str]:
        # Names only: a key never reaches a log or the node's drift report.
        return [f"- mail_crypt_keys {d}" for d in sorted(self.removed)] + [
            f"+ mail_crypt_keys {d}" for d in sorted(self.added)
        ]


def apply(path: Path, rows: set[tuple], *, dry_run: bool = False) -> KeyDiff:
    """Make the store hold exactly `rows`, in place, in one short transaction; returns what
    differed (nothing written with `dry_run`)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    ensure_store(path)
    conn = connect(path)
    try:
        with write_transaction(conn, dry_run=dry_run):
            have = set(conn.execute(f"SELECT {', '.join(COLUMNS)} FROM mail_crypt_keys"))  # noqa: S608
            gone, new = have - rows, rows - have
            wanted = {row[0] for row in rows}
            diff = KeyDiff(added={row[0] for row in new},
                           removed={row[0] for row in gone} - wanted)
            if not dry_run:
                conn.executemany("DELETE FROM mail_crypt_keys WHERE domain = ?",
                                 [(row[0],) for row in gone])
                conn.executemany("INSERT OR REPLACE INTO mail_crypt_keys VALUES (?, ?, ?, ?)",
                                 new)
    finally:
        conn.close()
    return diff
