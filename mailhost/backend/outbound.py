"""The node's outbound policy stores, applied by the reconciler like the lookup store.

Three small SQLite files the submission path reads with the portal down: the suppression lists
(mailhost.backend.suppressions), the sending quotas' limits (mailhost.backend.quotas; the
usage counters there are the node's own and never touched here) and the application senders
(mailhost.backend.senders). `OutboundSnap` is what the apps want them to hold (read through
`nodes.snapshot`); `apply` writes the row difference in place, one short transaction per store
(never a new file: Postfix, Dovecot and the milter keep the inode open), and says what changed,
so a full reconcile reports a hand-edited row as drift and repairs it.
"""

import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from mailhost.backend import quotas, senders, suppressions
from mailhost.backend.stores import write_transaction

# store → table → its columns, in the rows' order.
TABLES: dict[str, dict[str, tuple[str, ...]]] = {
    suppressions.SUPPRESSIONS_DB: {"suppressions": ("sender_domain", "value", "reason")},
    quotas.QUOTAS_DB: {"limits": quotas.LIMIT_COLUMNS},
    senders.SENDERS_DB: {"app_senders": ("login", "password"),
                         "app_sender_addresses": ("address", "login")},
}


@dataclass(frozen=True)
class OutboundSnap:
    """Every row of the three stores (tuples in TABLES' column order)."""

    suppressions: frozenset[tuple] = frozenset()
    limits: frozenset[tuple] = frozenset()
    app_senders: frozenset[tuple] = frozenset()
    app_sender_addresses: frozenset[tuple] = frozenset()

    def table(self, name: str) -> frozenset[tuple]:
        return getattr(self, name)


@dataclass
class OutboundDiff:
    added: dict[str, set[tuple]] = field(default_factory=dict)
    removed: dict[str, set[tuple]] = field(default_factory=dict)

    @property
    def count(self) -> int:
        return sum(map(len, self.added.values())) + sum(map(len, self.removed.values()))

    def describe(self) -> list[str]:
        lines = []
        for table in sorted(set(self.added) | set(self.removed)):
            lines += [f"- {table} {row!r}"[:300] for row in sorted(self.removed.get(table, ()),
                                                                  key=repr)]
            lines += [f"+ {table} {row!r}"[:300] for row in sorted(self.added.get(table, ()),
                                                                  key=repr)]
        return lines


def _connect(path: Path) -> sqlite3.Connection:
    """The store, with its current schema (each module's own, columns added to an old file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.name == Path(quotas.QUOTAS_DB).name:
        return quotas.connect(path)
    conn = sqlite3.connect(path, timeout=30, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.executescript(suppressions.SCHEMA if path.name == Path(suppressions.SUPPRESSIONS_DB).name
                       else senders.SCHEMA)
    return conn


def _sync_table(conn: sqlite3.Connection, table: str, columns: tuple[str, ...], want: set,
                diff: OutboundDiff, *, dry_run: bool) -> None:
    """Make `table` hold exactly `want`, noting in `diff` what differed."""
    cols = ", ".join(columns)
    have = set(conn.execute(f"SELECT {cols} FROM {table}"))  # noqa: S608 (fixed names)
    gone, new = have - want, want - have
    if gone:
        diff.removed[table] = gone
    if new:
        diff.added[table] = new
    if dry_run:
        return
    where = " AND ".join(f"{c} IS ?" for c in columns)
    conn.executemany(f"DELETE FROM {table} WHERE {where}", gone)  # noqa: S608
    marks = ", ".join("?" * len(columns))
    conn.executemany(f"INSERT OR REPLACE INTO {table} ({cols}) VALUES ({marks})", new)  # noqa: S608


def apply(state_dir: Path, snap: OutboundSnap, *, dry_run: bool = False) -> OutboundDiff:
    """Make the stores hold exactly `snap`'s rows; returns what differed (nothing written
    with `dry_run`)."""
    diff = OutboundDiff()
    for store, tables in TABLES.items():
        conn = _connect(Path(state_dir) / store)
        try:
            with write_transaction(conn, dry_run=dry_run):
                for table, columns in tables.items():
                    _sync_table(conn, table, columns, set(snap.table(table)), diff,
                                dry_run=dry_run)
        finally:
            conn.close()
    return diff
