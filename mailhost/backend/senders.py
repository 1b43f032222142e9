"""The node's application senders: send-only SMTP credentials for services.

A SQLite file (`senders/senders.sqlite`) the portal writes whole (delivery.services.senders):
  app_senders(login, password)             a login ("app-<hex>", never an address, so it can
                                           never be a mailbox) and its Dovecot password hash
  app_sender_addresses(address, login)     the From addresses the login may send as
Dovecot's last passdb answers from it for the SMTP service only (`'%s' = 'smtp'`), so IMAP,
POP3, ManageSieve and webmail never accept it; Postfix's sender login maps and the sender
policy milter read the addresses. Like the lookup store, Postfix opens it read-write.
"""

import sqlite3
from pathlib import Path

SENDERS_DB = "senders/senders.sqlite"  # relative to the state directory
SCHEMA = """
CREATE TABLE IF NOT EXISTS app_senders (login TEXT NOT NULL PRIMARY KEY, password TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS app_sender_addresses (
    address TEXT NOT NULL, login TEXT NOT NULL, PRIMARY KEY (address, login));
"""
POSTFIX_QUERY = "SELECT login FROM app_sender_addresses WHERE address='%s'"
DOVECOT_QUERY = (
    "SELECT login AS user, password FROM app_senders WHERE login = '%u' AND '%s' = 'smtp'"
)


def ensure_schema(path: Path) -> None:
    conn = sqlite3.connect(path, timeout=30)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.executescript(SCHEMA)
    finally:
        conn.close()


def replace_all(path: Path, senders: list[tuple[str, str]],
                addresses: list[tuple[str, str]]) -> None:
    """Make the store hold exactly these rows, in place, in one short transaction."""
    ensure_schema(path)
    conn = sqlite3.connect(path, timeout=30)
    try:
        with conn:
            conn.execute("DELETE FROM app_senders")
            conn.execute("DELETE FROM app_sender_addresses")
            conn.executemany("INSERT INTO app_senders VALUES (?, ?)", senders)
            conn.executemany("INSERT INTO app_sender_addresses VALUES (?, ?)", addresses)
    finally:
        conn.close()


def may_send_as(conn: sqlite3.Connection, login: str, address: str) -> bool:
    return conn.execute("SELECT 1 FROM app_sender_addresses WHERE address = ? AND login = ?",
                        (address, login)).fetchone() is not None
