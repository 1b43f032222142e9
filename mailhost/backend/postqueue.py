"""The node's Postfix queue as operators see it: what waits (postqueue -j), and the actions on
one message (retry now, hold, release, delete) through Postfix's own tools.

Always against the node's config directory (`-c`): nothing here touches a system Postfix.
The next attempt of a deferred message is its queue file's modification time, which qmgr sets
to the time it will try again.
"""

import json
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

QUEUE_ID = re.compile(r"^[0-9A-Za-z]{6,32}$")
ACTIONS = {
    "retry": ["postqueue", "-i"],
    "hold": ["postsuper", "-h"],
    "release": ["postsuper", "-H"],
    "delete": ["postsuper", "-d"],
}
TIMEOUT = 60


class QueueError(Exception):
    """Postfix's tools did not answer, or refused."""


@dataclass(frozen=True)
class QueueEntry:
    queue_id: str
    queue: str  # active, deferred, hold, incoming, maildrop
    arrival: int  # Unix time it was queued
    size: int
    sender: str  # "" for a bounce (null sender)
    recipients: tuple[tuple[str, str], ...]  # (address, why it waits)
    next_attempt: int | None = None  # Unix time, deferred messages only

    @property
    def reason(self) -> str:
        return next((why for _, why in self.recipients if why), "")

    @property
    def sender_domain(self) -> str:
        return self.sender.rpartition("@")[2].lower() if "@" in self.sender else ""


def _run(argv: list[str]) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise QueueError(f"{argv[0]} did not run: {exc}") from exc


def read_queue(state_dir: Path) -> list[QueueEntry]:
    """Every message in the node's queue, oldest first. A node whose Postfix was never set
    up (no main.cf) holds no mail."""
    postfix_dir, spool = Path(state_dir) / "postfix", Path(state_dir) / "spool"
    if not (postfix_dir / "main.cf").exists():
        return []
    done = _run(["postqueue", "-c", str(postfix_dir), "-j"])
    if done.returncode != 0:
        raise QueueError(f"postqueue -j failed: {done.stderr.strip()[:500]}")
    next_times = _deferred_times(spool)
    entries = []
    for line in done.stdout.splitlines():
        if not line.strip():
            continue
        item = json.loads(line)
        entries.append(QueueEntry(
            queue_id=item["queue_id"], queue=item["queue_name"],
            arrival=int(item.get("arrival_time", 0)), size=int(item.get("message_size", 0)),
            sender=item.get("sender", ""),
            recipients=tuple((r.get("address", ""), r.get("delay_reason", ""))
                             for r in item.get("recipients", [])),
            next_attempt=next_times.get(item["queue_id"]) if item["queue_name"] == "deferred"
            else None,
        ))
    return sorted(entries, key=lambda e: (e.arrival, e.queue_id))


def _deferred_times(spool: Path) -> dict[str, int]:
    times = {}
    root = spool / "deferred"
    try:
        for path in root.rglob("*"):
            try:
                if path.is_file():
                    times[path.name] = int(path.stat().st_mtime)
            except FileNotFoundError:  # delivered while we looked
                continue
    except FileNotFoundError:
        pass
    return times


def act(state_dir: Path, action: str, queue_id: str) -> None:
    """Retry now, hold, release or delete one message; QueueError if Postfix did not."""
    if action not in ACTIONS:
        raise ValueError(f"unknown queue action {action!r}")
    if not QUEUE_ID.match(queue_id):
        raise ValueError(f"not a queue id: {queue_id!r}")
    tool, flag = ACTIONS[action]
    done = _run([tool, "-c", str(Path(state_dir) / "postfix"), flag, queue_id])
    if done.returncode != 0:
        raise QueueError(f"{tool} {flag} {queue_id} failed: {done.stderr.strip()[:500]}")
    if tool == "postsuper" and not re.search(r": [1-9]\d* message", done.stderr):
        raise QueueError(f"{tool} {flag} {queue_id} changed nothing: "
                         f"{done.stderr.strip()[:500] or 'no such message in that state'}")
