"""Node-side log housekeeping: the stack's daemons append to log/<daemon>.log in the state
directory; a log grown past a size is compressed aside and emptied, and compressed
generations older than the retention are deleted.

Every daemon opens its log for appending (O_APPEND), so emptying the file in place keeps them
writing at its new end without a reload; lines written between the copy and the truncation
are lost (as with logrotate's copytruncate), which the size threshold keeps rare.
"""

from __future__ import annotations

import datetime as dt
import gzip
import os
import shutil
from pathlib import Path


def rotate_logs(log_dir: Path, *, max_bytes: int, keep_days: int,
                now: dt.datetime) -> dict[str, int]:
    """{"rotated", "deleted", "bytes_freed"} of one run over `log_dir`."""
    result = {"rotated": 0, "deleted": 0, "bytes_freed": 0}
    if not log_dir.is_dir():
        return result
    stamp = now.strftime("%Y%m%dT%H%M%S")
    for log in sorted(log_dir.glob("*.log")):
        size = log.stat().st_size
        if size <= max_bytes:
            continue
        target = log.with_name(f"{log.name}.{stamp}.gz")
        with open(log, "rb") as source, gzip.open(target, "wb") as sink:
            shutil.copyfileobj(source, sink)
        os.truncate(log, 0)
        result["rotated"] += 1
        result["bytes_freed"] += size - target.stat().st_size
    cutoff = (now - dt.timedelta(days=keep_days)).timestamp()
    for old in sorted(log_dir.glob("*.log.*.gz")):
        stat = old.stat()
        if keep_days > 0 and stat.st_mtime < cutoff:
            old.unlink()
            result["deleted"] += 1
            result["bytes_freed"] += stat.st_size
    return result
