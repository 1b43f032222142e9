"""Atomic file writes for everything the reconciler and the stack runner put on a node.

A file is written to a temp file in the same directory, fsynced, optionally validated, then
renamed over the target: a reader (or a crash) sees the old file or the new one, never a torn one.
"""

import hashlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_atomic(
    path: Path,
    data: bytes,
    *,
    mode: int = 0o644,
    uid: int = -1,
    gid: int = -1,
    validate: Callable[[Path], None] | None = None,
    sync_dir: bool = True,
) -> bool:
    """Write `data` to `path` atomically; return False (and write nothing) if it is unchanged.

    `validate` gets the temp file's path and raises to refuse it; the target is then untouched.
    `sync_dir=False`: the caller fsyncs the directory itself (`fsync_dirs`), once for many
    files written into it.
    """
    path = Path(path)
    try:
        if path.read_bytes() == data and (path.stat().st_mode & 0o7777) == mode:
            return False
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        if uid != -1 or gid != -1:
            os.chown(tmp, uid, gid)
        if validate is not None:
            validate(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if sync_dir:
        _fsync_dir(path.parent)
    return True


def fsync_dirs(directories) -> None:
    """Make the renames of files written with `sync_dir=False` durable."""
    for directory in sorted(set(directories)):
        _fsync_dir(directory)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
