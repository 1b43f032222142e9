"""Reading what the node's event agent wrote, and writing the Postfix log it follows."""

import sqlite3
from contextlib import closing
from pathlib import Path


def log_text(*lines: str) -> str:
    """Log lines as Postfix writes them: one per line, each ending in a newline."""
    return "".join(line + "\n" for line in lines)


def store_rows(db: Path, sql: str) -> list[tuple]:
    with closing(sqlite3.connect(db)) as conn:
        return conn.execute(sql).fetchall()
