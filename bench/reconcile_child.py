"""B4's subject: one full reconcile of the bench node in a fresh process, timed by phase.

Run by the runner as `python -m bench.reconcile_child` with the bench environment; prints one
JSON line. The phases are measured by wrapping the reconciler's own functions (no code of the
reconciler changes); the runner reads the process's peak RSS from wait4() as well.
"""

import cProfile
import json
import os
import resource
import sys
import time
from collections import defaultdict
from pathlib import Path

PHASES: dict[str, float] = defaultdict(float)


def _timed(owner, name: str, phase: str) -> None:
    original = getattr(owner, name)

    def wrapper(*args, **kwargs):
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            PHASES[phase] += time.perf_counter() - started

    setattr(owner, name, wrapper)


def _instrument() -> None:
    from mailhost.backend import apply, dav, stack
    from nodes import reconcile, snapshot

    _timed(snapshot, "domains", "snapshot")
    _timed(snapshot, "active_dkim_keys", "snapshot")
    # The rows stream: database cursors, rendering, the merge with the lookup store and the
    # batched writes are interleaved, so they are one phase (the commit apart).
    _timed(reconcile, "_stream_rows", "rows: stream, render, merge, write")
    _timed(apply.LookupSync, "commit", "rows: commit")
    _timed(reconcile, "render_static_files", "render static")
    _timed(reconcile, "_dkim_specs", "DKIM files (keys decrypted)")
    _timed(reconcile, "_inbound_specs", "inbound files (+ local-mode hosted zone)")
    _timed(reconcile, "_edge_specs", "edge sites")
    _timed(apply.ManagedFiles, "plan", "plan files")
    _timed(apply.ManagedFiles, "apply", "write files")
    _timed(stack.Stack, "prepare", "prepare dirs")
    _timed(stack.Stack, "write_config", "write + validate config")
    _timed(reconcile, "_sync_maildirs", "maildirs")
    _timed(reconcile, "_mark_applied", "record (Postgres)")
    # The full pass's DAV links: the links there are (made on first use), checked against the store.
    _timed(dav, "sync_links_from_store", "DAV links")
    _timed(reconcile, "_rows_inputs", "rows inputs digest (Postgres)")
    _timed(reconcile, "reconcile_incremental", "incremental pre-pass")


def main() -> None:
    import django

    django.setup()
    _instrument()
    from nodes.changes import node_default
    from nodes.reconcile import reconcile_full

    profile_dir = os.environ.get("BENCH_PROFILE_DIR")  # where to leave a cProfile of the pass
    profiler = cProfile.Profile() if profile_dir else None
    started = time.perf_counter()
    if profiler is not None:
        profiler.enable()
    report = reconcile_full(node_default())
    seconds = time.perf_counter() - started
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(Path(profile_dir) / f"reconcile-{os.getpid()}.prof")
    result = {
        "seconds": seconds,
        "rows_changed": report.rows.count,
        "files_changed": len(report.files),
        "drift_items": len(report.drift),
        "phases": {k: round(v, 3) for k, v in sorted(PHASES.items(), key=lambda kv: -kv[1])},
        "self_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    sys.stdout.write("RESULT " + json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
