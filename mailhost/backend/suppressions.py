"""The node's copy of the suppression lists: who the organisations' mail must not go to.

A small SQLite file (`suppressions/suppressions.sqlite`) that the portal writes (whole, in one
transaction, delivery.services.suppressions) and the sender-policy milter reads at RCPT on the
submission listeners: one row per (sending domain, suppressed address or domain), so a
suppression binds exactly the organisation whose domains send. It stays in force while the
portal is down. Plain SQLite; no Django.
"""

import sqlite3
from pathlib import Path

SUPPRESSIONS_DB = "suppressions/suppressions.sqlite"  # relative to the state directory
SCHEMA = """
CREATE TABLE IF NOT EXISTS suppressions (
    sender_domain TEXT NOT NULL, value TEXT NOT NULL, reason TEXT NOT NULL,
    PRIMARY KEY (sender_domain, value));
"""


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=30)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.executescript(SCHEMA)
    return conn


def replace_all(path: Path, rows: list[tuple[str, str, str]]) -> int:
    """Make the store hold exactly `rows` (sender domain, value, reason); returns how many
    changed. In place, in one short transaction (never a new file: readers keep the inode)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    conn = _connect(path)
    try:
        wanted = {(d, v): r for d, v, r in rows}
        with conn:
            have = {(d, v): r for d, v, r in conn.execute(
                "SELECT sender_domain, value, reason FROM suppressions")}
            gone = [key for key in have if key not in wanted]
            new = [(*key, r) for key, r in wanted.items() if have.get(key) != r]
            conn.executemany("DELETE FROM suppressions WHERE sender_domain = ? AND value = ?",
                             gone)
            conn.executemany("INSERT OR REPLACE INTO suppressions VALUES (?, ?, ?)", new)
        return len(gone) + len(new)
    finally:
        conn.close()


def refusal(conn: sqlite3.Connection, sender: str, recipient: str) -> str | None:
    """Why mail from `sender` may not go to `recipient` (the reason), or None."""
    sender_domain = sender.rpartition("@")[2].lower()
    address = recipient.strip().removeprefix("<").removesuffix(">").lower()
    row = conn.execute(
        "SELECT reason FROM suppressions WHERE sender_domain = ? AND value IN (?, ?)",
        (sender_domain, address, address.rpartition("@")[2]),
    ).fetchone()
    return row[0] if row else None
