"""B4: a full reconcile of every mailbox onto an empty node, then a no-op full reconcile.

"Empty node": the daemons are stopped and the state directory removed, as on a fresh host (or
one that lost its disk). The reconcile runs in a fresh process (`bench.reconcile_child`), whose
peak RSS the runner reads with wait4(); then the stack starts on what it wrote, and a second
full reconcile, with nothing left to do, measures the periodic sweep's fixed cost.
"""

import json
import os
import shutil
import subprocess
import sys
import time

from bench.context import BenchError, Ctx
from bench.env import ROOT


def run_reconcile_child(ctx: Ctx, label: str) -> dict:
    log = ctx.env.log_dir / f"reconcile-{label}.log"
    with open(log, "wb") as stderr:
        started = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-m", "bench.reconcile_child"], cwd=ROOT, stdout=subprocess.PIPE,
            stderr=stderr, stdin=subprocess.DEVNULL,
        )
        out = proc.stdout.read().decode(errors="replace")
        proc.stdout.close()
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - started
    lines = [line for line in out.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        tail = log.read_text(errors="replace")[-3000:]
        raise BenchError(f"reconcile ({label}) failed, exit {proc.returncode}:\n{tail}")
    result = json.loads(lines[-1].removeprefix("RESULT "))
    result["process_wall_seconds"] = round(wall, 3)
    result["peak_rss_mb"] = round(usage.ru_maxrss / 1024, 1)  # KiB on Linux
    # CPU time is what the reconcile costs; wall time also holds the machine's other load.
    result["cpu_seconds"] = round(usage.ru_utime + usage.ru_stime, 3)
    result["seconds"] = round(result["seconds"], 3)
    return result


def apply_from_empty(ctx: Ctx) -> dict:
    """The node's daemons stop, its state dir goes; full reconcile; start; no-op reconcile."""
    ctx.stack.stop()
    if ctx.env.state_dir.exists():  # B10 at the level before may leave it moved aside
        shutil.rmtree(ctx.env.state_dir)
    full = run_reconcile_child(ctx, f"full-{ctx.mailboxes}")
    started = time.perf_counter()
    ctx.stack.start()
    stack_start = time.perf_counter() - started
    noop = run_reconcile_child(ctx, f"noop-{ctx.mailboxes}")
    if noop["rows_changed"] or noop["files_changed"]:
        raise BenchError(f"the no-op reconcile changed something: {noop}")
    lookup_db = ctx.env.state_dir / "lookup" / "lookup.sqlite"
    return {
        "mailboxes": ctx.mailboxes,
        "domains": ctx.domains,
        "full": full,
        "noop": noop,
        "stack_start_seconds": round(stack_start, 3),
        "lookup_db_mb": round(lookup_db.stat().st_size / 2**20, 1),
    }
