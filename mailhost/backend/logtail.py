"""Following a log file from a position kept in SQLite, with the rows it produced.

The caller reads what was added since the cursor, folds it into its own tables and stores the
new position in the same transaction: killed at any point, it resumes where its last commit
left it, so nothing is lost or counted twice. A rotated log (new inode, or shorter than the
position) is read from its start; a line still being written waits for its newline.
"""

import os
import sqlite3
from pathlib import Path

CURSOR_SCHEMA = """
CREATE TABLE IF NOT EXISTS cursor (
    id INTEGER PRIMARY KEY CHECK (id = 1), inode INTEGER NOT NULL, offset INTEGER NOT NULL);
"""


def read_new(conn: sqlite3.Connection, log: Path, max_bytes: int) -> tuple[int, int, bytes] | None:
    """(inode, position after the complete lines, those lines) since the cursor; None when
    there is no log yet."""
    try:
        handle = open(log, "rb")  # noqa: SIM115 (closed below)
    except FileNotFoundError:
        return None
    with handle:
        info = os.fstat(handle.fileno())
        row = conn.execute("SELECT inode, offset FROM cursor WHERE id = 1").fetchone()
        offset = row[1] if row and row[0] == info.st_ino and row[1] <= info.st_size else 0
        handle.seek(offset)
        chunk = handle.read(max_bytes)
    complete = chunk[: chunk.rfind(b"\n") + 1]
    return info.st_ino, offset + len(complete), complete


def save_cursor(conn: sqlite3.Connection, inode: int, offset: int) -> None:
    """Inside the caller's transaction, with the rows the lines produced."""
    conn.execute("INSERT OR REPLACE INTO cursor (id, inode, offset) VALUES (1, ?, ?)",
                 (inode, offset))
