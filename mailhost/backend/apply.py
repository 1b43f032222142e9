"""Applying rendered state to a node: lookup rows and managed files. All I/O lives here.

Rows: the difference between the rendered rows and the rows in the lookup store is written in
one SQLite transaction (a killed worker leaves the previous commit): for a few objects as a
diff of two small sets (`diff_rows`, `write_rows`), for the whole node as a streamed merge in
key order (`LookupSync`), so a full pass holds a bounded number of rows at any size.
Files: only changed files are written, each atomically; a manifest of content hashes marks them
as managed, so a hand edit (or removal) is detected as drift and repaired.
"""

import functools
import json
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from mailhost.backend import lookup
from mailhost.backend.files import fsync_dirs, sha256, write_atomic
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
            _write(conn, table, rows, set())
        for table, rows in diff.added.items():
            # REPLACE: a key still held by a stale row of another object goes to the new owner;
            # the full reconcile would report that stale row as drift anyway.
            _write(conn, table, set(), rows)


# --- the full pass: a streamed merge -----------------------------------------------------------

MAX_DESCRIBED = 1000  # row changes a streamed pass describes (a wiped node changes every row)
CHUNK_ROWS = 4000  # rendered rows per table merged at a time (plus the rest of one address)
WRITER_CACHE_KIB = 65536  # the writer's page cache: index pages stay hot during a bulk load


class RowOrderError(RuntimeError):
    """Desired rows arrived out of address order: merging them could delete rows still wanted."""


@dataclass
class RowChanges:
    """What a streamed full pass changes in the lookup store: counts, and the first
    MAX_DESCRIBED changes described. A changed row counts as one removed and one added."""

    added: int = 0
    removed: int = 0
    lines: list[str] = field(default_factory=list)

    @property
    def count(self) -> int:
        return self.added + self.removed

    def note(self, table: str, removed: set[tuple], added: set[tuple]) -> None:
        self.removed += len(removed)
        self.added += len(added)
        room = MAX_DESCRIBED - len(self.lines)
        if room > 0:
            lines = [f"- {table} {row[1:]!r}"[:300] for row in sorted(removed)[:room]]
            lines += [f"+ {table} {row[1:]!r}"[:300] for row in sorted(added)[:room]]
            self.lines += lines[:room]

    def describe(self) -> list[str]:
        more = self.count - len(self.lines)
        if more <= 0:
            return list(self.lines)
        return [*self.lines, f"… and {more:,} more row changes ({self.count:,} in all)"]


class LookupSync:
    """The full pass's row apply, for a node of any size: rendered rows are pushed in address
    order, and each table is brought to them a range of addresses at a time. For each range the
    store's rows in it are read (its primary key index; SQLite's BINARY order is byte order,
    Python's str order for UTF-8) and the two sets compared, as the incremental diff does:
    memory holds one range per table, never the node. A range ends between two addresses, so
    every row of an address is compared at once, whichever objects rendered it.

    All writes go into ONE SQLite transaction, committed by `commit()`: a killed process
    leaves the previous commit, the old rows or the new, never a mix. The store's rows are read
    through a second connection, which sees that last commit while the writer's transaction is
    open (WAL). A dry run, or a pass that finds nothing to change, never opens a write
    transaction.

        with LookupSync(path) as sync:
            for rows in rendered_objects_in_address_order:
                sync.push_all(rows)  # [(table, row), …]
            changes = sync.finish()
            sync.commit()
    """

    def __init__(self, path: Path, *, dry_run: bool = False):
        self.changes = RowChanges()
        self._dry_run = dry_run
        self._path = Path(path)
        self._reader = lookup.connect(self._path) if self._path.exists() else None
        self._writer: sqlite3.Connection | None = None
        self._in_transaction = False
        self._pending: dict[str, list[tuple]] = {table: [] for table in lookup.TABLES}
        self._done_up_to: dict[str, str | None] = dict.fromkeys(lookup.TABLES)  # last range end
        # (writes, verified, verified_writes) before this pass read a row (lookup.sync_state)
        self._state = _sync_state(self._reader) if self._reader else None
        self._writes = self._state[0] if self._state else None  # the count this pass leaves
        self._foreign_write = False  # someone else wrote while this pass read

    def verified(self, inputs: str) -> bool:
        """Whether the store holds exactly the rows rendered from `inputs` (a digest of what
        they are rendered from): a full pass verified that, and no row was written since."""
        state = self._state
        return state is not None and state[1] == inputs and state[2] == state[0]

    @property
    def writes(self) -> int | None:
        """The store's write count as this pass leaves it (None: the store cannot tell)."""
        return self._writes

    def mark_verified(self, inputs: str) -> bool:
        """After a pass that brought every row to what `inputs` render (and committed): record
        it, unless another writer touched the store since this pass started reading it (its
        rows may then differ from what the pass compared). True if recorded."""
        if self._dry_run or self._foreign_write or self._writes is None:
            return False
        conn = lookup.connect(self._path)
        try:
            with conn:
                done = conn.execute(
                    "UPDATE sync_state SET verified = ?, verified_writes = writes"
                    " WHERE id = 1 AND writes = ?", (inputs, self._writes),
                )
            return done.rowcount == 1
        finally:
            conn.close()

    def push(self, table: str, row: tuple) -> None:
        self.push_all([(table, row)])

    def push_all(self, rows: list[tuple[str, tuple]]) -> None:
        """The rows of one object (or more), each table's in address order after the rows
        pushed before them."""
        pending = self._pending
        for table, row in rows:
            buffer = pending[table]
            buffer.append(row)
            if len(buffer) > CHUNK_ROWS and buffer[-1][1] != buffer[-2][1]:
                # A new address starts: merge everything before it.
                pending[table] = [buffer.pop()]
                self._merge(table, buffer, end=buffer[-1][1])

    def finish(self) -> RowChanges:
        """No more rows: merge what is pending, to the end of every table. Writes pending (not
        committed)."""
        for table, buffer in self._pending.items():
            self._pending[table] = []
            self._merge(table, buffer, end=None)
        return self.changes

    def _merge(self, table: str, rows: list[tuple], *, end: str | None) -> None:
        """Bring the table's rows with addresses in (the last range's end, `end`] to `rows`."""
        start = self._done_up_to[table]
        addresses = [row[1] for row in rows]
        if addresses != sorted(addresses) or (addresses and start is not None
                                              and addresses[0] <= start):
            raise RowOrderError(f"{table}: rows out of address order after {start!r}")
        desired, current = set(rows), self._current(table, start, end)
        removed, added = current - desired, desired - current
        self._done_up_to[table] = end
        if removed or added:
            self.changes.note(table, removed, added)
            if not self._dry_run:
                _write(self._begin(), table, removed, added)

    def _current(self, table: str, start: str | None, end: str | None) -> set[tuple]:
        if self._reader is None:
            return set()
        columns = ", ".join(("src",) + lookup.TABLES[table])
        key = lookup.TABLES[table][0]
        bounds = [(f"{key} > ?", start), (f"{key} <= ?", end)]
        where = " AND ".join(cond for cond, value in bounds if value is not None) or "1"
        values = [value for _, value in bounds if value is not None]
        query = f"SELECT {columns} FROM {table} WHERE {where}"  # noqa: S608 (fixed names)
        return set(self._reader.execute(query, values))

    def _begin(self) -> sqlite3.Connection:
        if self._writer is None:
            self._writer = lookup.connect(self._path)
            self._writer.isolation_level = None  # transactions by hand: BEGIN … COMMIT
            self._writer.execute(f"PRAGMA cache_size = -{WRITER_CACHE_KIB}")
        if not self._in_transaction:
            self._writer.execute("BEGIN IMMEDIATE")
            self._in_transaction = True
            state = _sync_state(self._writer)  # nobody else writes until COMMIT
            if state is None or state[0] != self._writes:
                self._foreign_write = True
        return self._writer

    def commit(self) -> None:
        if self._in_transaction:
            state = _sync_state(self._writer)
            self._writes = state[0] if state else None
            self._writer.execute("COMMIT")
            self._in_transaction = False

    def close(self) -> None:
        try:
            if self._in_transaction:
                self._writer.execute("ROLLBACK")
                self._in_transaction = False
        finally:
            for conn in (self._reader, self._writer):
                if conn is not None:
                    conn.close()

    def __enter__(self) -> "LookupSync":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _sync_state(conn: sqlite3.Connection) -> tuple[int, str, int] | None:
    try:
        return conn.execute(
            "SELECT writes, verified, verified_writes FROM sync_state WHERE id = 1"
        ).fetchone()
    except sqlite3.OperationalError:  # a store made before sync_state (until stack.prepare)
        return None


def _write(conn: sqlite3.Connection, table: str, removed: set[tuple], added: set[tuple]) -> None:
    """Deletes first, so a key that changed owner or values is free for its new row."""
    columns = ("src",) + lookup.TABLES[table]
    if removed:
        where = " AND ".join(f"{c} = ?" for c in columns)
        conn.executemany(f"DELETE FROM {table} WHERE {where}", removed)  # noqa: S608
    if added:
        marks = ",".join("?" * len(columns))
        conn.executemany(
            f"INSERT OR REPLACE INTO {table} ({','.join(columns)}) VALUES ({marks})",  # noqa: S608
            added,
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


# Manifests parsed by this process, by path: (inode, mtime, ctime, size) of the version read,
# and its content. A worker's passes read the same manifest again and again (parsing it is
# ~2 ms at 10,000 domains, in every pass that plans a Sieve file); every write of it is a
# rename (`write_atomic`), so a new version is a new inode.
_manifests: dict[Path, tuple[tuple[int, int, int, int], dict[str, str]]] = {}


def _parsed_manifest(path: Path) -> dict[str, str]:
    stat = path.stat()  # before the read: a file replaced in between is read again next time
    version = (stat.st_ino, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_size)
    cached = _manifests.get(path)
    if cached is None or cached[0] != version:
        cached = (version, json.loads(path.read_bytes()))
        _manifests[path] = cached
    return cached[1]


class ManagedFiles:
    """Files the reconciler owns under a state directory, with a manifest of their hashes."""

    def __init__(self, state_dir: Path):
        self.state_dir = Path(state_dir)
        self.manifest_path = self.state_dir / MANIFEST

    @functools.cached_property
    def manifest(self) -> dict[str, str]:
        """Read when first needed: an incremental pass that touches no file does not read it
        (it lists every DKIM key of the node: ~1 MB at 10,000 domains). Parsed once per
        version of the file in this process (`_parsed_manifest`); this copy is the pass's own."""
        try:
            return dict(_parsed_manifest(self.manifest_path))
        except FileNotFoundError:
            return {}

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
        if not desired and not changes and self.manifest_path.exists():
            return  # nothing to write or adopt: the manifest stays as it is
        before = dict(self.manifest)
        written = set()
        for change in changes:
            target = self.state_dir / change.path
            if change.action == "write":
                spec = desired[change.path]
                # Each directory is synced once below (10,000 DKIM keys share one), before the
                # manifest records the files.
                write_atomic(target, spec.data, mode=spec.mode, uid=spec.uid, gid=spec.gid,
                             sync_dir=False)
                written.add(target.parent)
                self.manifest[change.path] = sha256(spec.data)
            else:
                target.unlink(missing_ok=True)
                self.manifest.pop(change.path, None)
        fsync_dirs(written)
        # Adopt files that were already right, and correct a stale recorded hash: a writer
        # killed between renaming a file into place and saving the manifest leaves the new file
        # under the old hash, and the next pass finds the file right and writes nothing.
        for relative, spec in desired.items():
            self.manifest[relative] = sha256(spec.data)
        if self.manifest != before or not self.manifest_path.exists():
            self._save()
