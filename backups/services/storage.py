"""Encrypted objects on a target: put (content-addressed, only when new), get and verify."""

import hashlib
import io
import json
import tempfile
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO

from backups.crypto import BackupUnreadable, decrypt_stream, encrypt_stream, object_name
from backups.targets import Target

SPOOL = 8 * 1024 * 1024  # encrypted objects up to this size stay in memory before upload
# Object stores answer each request after a round trip: a few in flight hide it. Memory stays
# bounded: each transfer holds at most one SPOOL.
TRANSFERS = 4


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1024 * 1024), b""):
            digest.update(block)
    return digest.hexdigest()


class KeyStore:
    """One key's corner of a target: `<prefix>/objects/<name>` and `<prefix>/manifests/…`.
    Names inside the AAD are relative to the prefix, so a tenant's corner can be moved
    (handed over) as a whole and still decrypts."""

    def __init__(self, target: Target, prefix: str, key: bytes):
        self.target, self.prefix, self.key = target, prefix, key
        self._known: set[str] | None = None
        self.uploaded: list[str] = []  # relative names written by this run
        self.bytes_written = 0
        self._lock = threading.Lock()
        self._pending: list[Future] = []
        self._pool: ThreadPoolExecutor | None = None

    def _submit(self, fn, *args) -> Future:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(TRANSFERS, thread_name_prefix="backup")
        return self._pool.submit(fn, *args)

    def flush(self) -> None:
        """Wait for the uploads put_file started; the first failure is raised."""
        pending, self._pending = self._pending, []
        for future in pending:
            future.result()

    def close(self) -> None:
        """Stop the transfer threads; after a failure, uploads not yet started are dropped
        (the run failed: no manifest names them)."""
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None
        self._pending = []

    def get_many(self, jobs: list[tuple[str, Path | None]]) -> None:
        """Decrypt and check several objects, each into its file (None: check only), a few
        at a time. The first failure is raised, naming its object."""
        def fetch(name: str, path: Path | None) -> None:
            if path is None:
                self.get(name, None)
                return
            with open(path, "wb") as out:
                self.get(name, out)

        futures = [self._submit(fetch, name, path) for name, path in jobs]
        for future in futures:
            future.result()

    def known_objects(self) -> set[str]:
        if self._known is None:  # one listing per run, not one HEAD per message
            start = len(self.prefix) + 1
            self._known = {name[start:] for name in self.target.list(f"{self.prefix}/objects")}
        return self._known

    def put_file(self, path: Path) -> tuple[str, str]:
        """Store a file's content unless already there; returns (object name, sha256)."""
        sha = file_sha256(path)
        name = f"objects/{object_name(self.key, sha)}"
        if name not in self.known_objects():
            self.known_objects().add(name)
            self._pending.append(self._submit(self._put_path, name, path))
        return name, sha

    def _put_path(self, name: str, path: Path) -> None:
        with open(path, "rb") as source:
            self._put(name, source)

    def put_json(self, name: str, document: dict) -> None:
        self._put(name, io.BytesIO(json.dumps(document, sort_keys=True).encode()))

    def _put(self, name: str, source: BinaryIO) -> None:
        with tempfile.SpooledTemporaryFile(max_size=SPOOL) as sealed:
            encrypt_stream(self.key, name, source, sealed)
            size = sealed.tell()
            sealed.seek(0)
            self.target.put(f"{self.prefix}/{name}", sealed)
        with self._lock:
            self.bytes_written += size
            self.uploaded.append(name)

    def get(self, name: str, out: BinaryIO | None) -> str:
        """Decrypt one object into `out` (None: check only); its sha256. A content-addressed
        object must also hash back to its own name. BackupUnreadable names the object."""
        full = f"{self.prefix}/{name}"
        with tempfile.SpooledTemporaryFile(max_size=SPOOL) as sealed:
            self.target.get(full, sealed)
            sealed.seek(0)
            try:
                sha = decrypt_stream(self.key, name, sealed, out)
            except BackupUnreadable as exc:
                raise BackupUnreadable(full, str(exc).split(": ", 1)[1]) from None
        if name.startswith("objects/") and name != f"objects/{object_name(self.key, sha)}":
            raise BackupUnreadable(full, "does not hash to its name")
        return sha

    def get_json(self, name: str) -> dict:
        out = io.BytesIO()
        self.get(name, out)
        return json.loads(out.getvalue())

    def manifests(self) -> list[str]:
        start = len(self.prefix) + 1
        return sorted(name[start:] for name in self.target.list(f"{self.prefix}/manifests"))

    def verify_uploaded(self) -> int:
        """Read back every object this run wrote: tag and hash. Returns how many."""
        self.flush()
        futures = [self._submit(self.get, name, None) for name in self.uploaded]
        for future in futures:
            future.result()
        return len(self.uploaded)
