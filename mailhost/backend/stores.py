"""The node's small SQLite stores (outbound policy, mail_crypt keys): one write at a time."""

import contextlib
import sqlite3
from collections.abc import Iterator


@contextlib.contextmanager
def write_transaction(conn: sqlite3.Connection, *, dry_run: bool = False) -> Iterator[None]:
    """One transaction taken for writing up front (BEGIN IMMEDIATE: no other writer slips in
    between the reads and the writes that follow from them); rolled back on an error, and
    with `dry_run`, so a dry run reads the same state a real one would and writes nothing.
    Needs a connection in autocommit mode (isolation_level=None)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    conn.execute("ROLLBACK" if dry_run else "COMMIT")
