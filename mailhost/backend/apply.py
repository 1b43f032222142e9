"""Applying rendered state to a node: lookup rows and managed files. All I/O lives here.

Rows: the difference between the rendered rows and the rows in the lookup store is written in
one short SQLite transaction (a killed worker leaves the previous commit). Files: only changed
files are written, each atomically; a manifest of content hashes marks them as managed, so a
hand edit (or removal) is detected as drift and repaired.
"""

import json
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from mailhost.backend import lookup
from mailhost.backend.files import sha256, write_atomic
from mailhost.backend.render import Rows

MANIFEST = "managed.json"


@dataclass
class RowDiff:
    added: dict[str, set[tuple]] = field(default_factory=dict)
    removed: dict[str, set[tuple]] = field(default_factory=dict)

    @property
    def count(self) -> int:
        return sum(map(len, self.added.values())) + sum(map(len, self.removed.values()))

    def srcs(self) -> set[str]:
        return {row[0] for rows in (*self.added.values(), *self.removed.values()) for row in rows}

    def describe(self) -> list[str]:
        lines = []
        for table in sorted(set(self.added) | set(self.removed)):
            lines += [f"- {table} {row[1:]!r}"[:300] for row in sorted(self.removed.get(table, ()))]
            lines += [f"+ {table} {row[1:]!r}"[:300] for row in sorted(self.added.get(table, ()))]
        return lines


def _current_rows(conn: sqlite3.Connection, table: str, srcs: set[str] | None) -> set[tuple]:
    columns = ", ".join(("src",) + lookup.TABLES[table])
    if srcs is None:
        return set(conn.execute(f"SELECT {columns} FROM {table}"))  # noqa: S608 (fixed names)
    found: set[tuple] = set()
    ordered = sorted(srcs)
    for start in range(0, len(ordered), 500):  # stay under SQLite's bound-parameter limit
        chunk = ordered[start : start + 500]
        marks = ",".join("?" * len(chunk))
        found |= set(
            conn.execute(f"SELECT {columns} FROM {table} WHERE src IN ({marks})", chunk)  # noqa: S608
        )
    return found


def diff_rows(conn: sqlite3.Connection, desired: Rows, srcs: set[str] | None) -> RowDiff:
    """What must change so the rows of `srcs` (all rows when None) equal `desired`."""
    diff = RowDiff()
    for table in lookup.TABLES:
        current = _current_rows(conn, table, srcs)
        wanted = desired.get(table, set())
        if wanted - current:
            diff.added[table] = wanted - current
        if current - wanted:
            diff.removed[table] = current - wanted
    return diff


def write_rows(conn: sqlite3.Connection, diff: RowDiff) -> None:
    """Apply a diff in one transaction: deletes first, so a renamed address can be reused."""
    with conn:
        for table, rows in diff.removed.items():
            columns = ("src",) + lookup.TABLES[table]
            where = " AND ".join(f"{c} = ?" for c in columns)
            conn.executemany(f"DELETE FROM {table} WHERE {where}", rows)  # noqa: S608
        for table, rows in diff.added.items():
            columns = ("src",) + lookup.TABLES[table]
            marks = ",".join("?" * len(columns))
            # REPLACE: a key still held by a stale row of another object goes to the new owner;
            # the full reconcile would report that stale row as drift anyway.
            conn.executemany(
                f"INSERT OR REPLACE INTO {table} ({','.join(columns)}) VALUES ({marks})",  # noqa: S608
                rows,
            )


@dataclass
class FileChange:
    path: str
    action: str  # "write" | "remove"
    drift: bool  # the file on disk differed from what we last wrote


@dataclass
class FileSpec:
    data: bytes
    mode: int = 0o644
    uid: int = -1
    gid: int = -1


class ManagedFiles:
    """Files the reconciler owns under a state directory, with a manifest of their hashes."""

    def __init__(self, state_dir: Path):
        self.state_dir = Path(state_dir)
        self.manifest_path = self.state_dir / MANIFEST
        try:
            self.manifest: dict[str, str] = json.loads(self.manifest_path.read_bytes())
        except FileNotFoundError:
            self.manifest = {}

    def _on_disk_hash(self, relative: str) -> str | None:
        try:
            return sha256((self.state_dir / relative).read_bytes())
        except FileNotFoundError:
            return None

    def plan(self, desired: dict[str, FileSpec], scope: set[str] | None = None) -> list[FileChange]:
        """Changes needed for the files in `scope` (every managed and desired file when None)."""
        paths = set(desired) | set(self.manifest) if scope is None else scope
        changes = []
        for relative in sorted(paths):
            on_disk = self._on_disk_hash(relative)
            recorded = self.manifest.get(relative)
            drift = recorded is not None and on_disk != recorded
            spec = desired.get(relative)
            if spec is not None and on_disk != sha256(spec.data):
                changes.append(FileChange(relative, "write", drift))
            elif spec is None and (on_disk is not None or recorded is not None):
                changes.append(FileChange(relative, "remove", drift))
        return changes

    def record(self, written: dict[str, FileSpec]) -> None:
        """Adopt files another writer (the stack's validating `write_config`) has put in place."""
        before = dict(self.manifest)
        self.manifest.update({path: sha256(spec.data) for path, spec in written.items()})
        if self.manifest != before:
            self._save()

    def forget(self, paths: list[str]) -> None:
        """Stop managing `paths` (left as they are on disk): a file that moved away with its
        mailbox home, or one that was never the reconciler's to manage."""
        dropped = [path for path in paths if self.manifest.pop(path, None) is not None]
        if dropped:
            self._save()

    def _save(self) -> None:
        payload = json.dumps(self.manifest, sort_keys=True, indent=0).encode()
        write_atomic(self.manifest_path, payload, mode=0o600)

    def apply(self, desired: dict[str, FileSpec], changes: list[FileChange]) -> None:
        before = dict(self.manifest)
        for change in changes:
            target = self.state_dir / change.path
            if change.action == "write":
                spec = desired[change.path]
                write_atomic(target, spec.data, mode=spec.mode, uid=spec.uid, gid=spec.gid)
                self.manifest[change.path] = sha256(spec.data)
            else:
                target.unlink(missing_ok=True)
                self.manifest.pop(change.path, None)
        for relative, spec in desired.items():  # adopt files that were already right
            self.manifest.setdefault(relative, sha256(spec.data))
        if self.manifest != before or not self.manifest_path.exists():
            self._save()
