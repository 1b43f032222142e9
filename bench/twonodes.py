"""B10: two nodes, one busy. Change → live on a small node while the other runs a full reconcile.

Node A is the bench's own node (all the seeded mailboxes). Node B is a second complete node
beside it, as a second host would be: its own MailNode row, state dir, host name and ports, its
own daemons (`Stack`) and its own Celery worker *process* consuming only its queue, started with
`node_environment` on top of the bench's environment. B holds one small domain.

B1's measurement (POST /mailboxes → first IMAP LOGIN on B) runs three times:
  idle      A's stack up and quiet;
  busy      A running full reconciles from empty, one after the other (A's daemons stopped,
            its state dir moved aside before each, as B4 removes it: a node that lost its
            disk rebuilding every row, file and maildir), in B4's child process;
  niced     the same, that child at nice 10 (what a full pass run at a lower CPU priority
            would give the other node's changes on a shared machine).
Leaving a busy phase stops the pass under way, so A is left stopped and half rebuilt: the
runner puts B10 where the next step rebuilds A from empty anyway (the next level's B4), or
last. Node B goes away afterwards.

On separate hosts the two nodes share only PostgreSQL and Redis; on the bench machine they
share its CPUs too, which is the worst case this measures.
"""

import shutil
import subprocess
import sys
import threading
import time

from bench.context import BenchError, Ctx
from bench.env import ROOT, free_ports, short_state_dir
from bench.live import Node, create_live
from bench.seed import PER_DOMAIN

NODE_B = "bench-b"
# Another host name: Postfix refuses to deliver to a server greeting with its own name.
HOSTNAME_B = "mail-b.bench.test"
DOMAIN_B = "c0000.bench-b.test"


class NodeB:
    """Node B's row, stack and worker; `stop()` takes all of it down and removes it."""

    def __init__(self, ctx: Ctx):
        from mailhost.backend.config import PORT_NAMES, NodeConfig
        from mailhost.backend.stack import Stack

        self.ctx = ctx
        ports = dict(zip(PORT_NAMES, free_ports(len(PORT_NAMES)), strict=True))
        self.cfg = NodeConfig.from_settings(state_dir=short_state_dir("mhc"),
                                            hostname=HOSTNAME_B, ports=ports)
        self.stack = Stack(self.cfg)
        self.node = None
        self.worker = None
        self.domains: list[str] = []

    def start(self) -> None:
        from bench import procs
        from bench.imap import ImapRace
        from mailhost.backend.config import node_environment
        from nodes.models import MailNode
        from nodes.queues import node_queue

        self.node = MailNode.objects.create(name=NODE_B, state_dir=str(self.cfg.state_dir))
        self.stack.start()
        self.worker = procs.start_worker(self.ctx.env, node_queue(NODE_B), label="-b",
                                         node_env=node_environment(self.cfg, NODE_B))
        self.probe = ImapRace(*self.stack.address("imap"))
        self._seed()

    def _seed(self) -> None:
        """One verified domain with PER_DOMAIN mailboxes on B (bulk, as bench.seed does), then
        B's worker applies it with a full reconcile."""
        from django.db.models import F

        from mailboxes.models import Mailbox
        from mailboxes.services import domain_create
        from nodes.models import MailNode
        from nodes.queues import node_queue
        from nodes.tasks import reconcile_node_full
        from tenants.access import SYSTEM

        tenant = self.ctx.tenant
        domain = domain_create(actor=SYSTEM, organisation=tenant.organisation, name=DOMAIN_B,
                               node=NODE_B)
        MailNode.objects.filter(pk=self.node.pk).update(
            desired_revision=F("desired_revision") + 1)
        revision = MailNode.objects.values_list("desired_revision", flat=True).get(
            pk=self.node.pk)
        Mailbox.objects.bulk_create([
            Mailbox(domain=domain, local_part=f"user{n:03d}", quota_mb=domain.default_quota_mb,
                    password_hash=tenant.password_hash, revision=revision)
            for n in range(PER_DOMAIN)
        ])
        reconcile_node_full.apply_async(args=[self.node.pk], queue=node_queue(NODE_B))
        self.domains = [DOMAIN_B]
        self.settle(timeout=180)

    def settle(self, timeout: float = 120.0) -> None:
        from nodes.models import MailNode

        deadline = time.monotonic() + timeout
        while True:
            desired, applied = MailNode.objects.values_list(
                "desired_revision", "applied_revision").get(pk=self.node.pk)
            if applied >= desired:
                return
            if time.monotonic() > deadline:
                raise BenchError(f"node B still at revision {applied} < {desired} after "
                                 f"{timeout} s")
            if not self.worker.alive():
                raise BenchError("node B's worker died; see var/bench/logs/worker-b*.log")
            time.sleep(0.02)

    def target(self) -> Node:
        from mailboxes.models import Mailbox

        mailboxes = Mailbox.objects.filter(domain__node=self.node).count()
        return Node(self.probe, self.cfg.lookup_db, self.domains, self.settle, mailboxes)

    def stop(self) -> list[str]:
        """Worker and daemons down, state dir gone, B's rows deleted. Returns problems."""
        problems = []
        if self.worker is not None:
            self.worker.stop()
        self.stack.stop()
        if self.stack.processes():
            problems.append(f"node B processes left: {sorted(self.stack.processes())}")
        shutil.rmtree(self.cfg.state_dir, ignore_errors=True)
        if self.node is not None:
            try:
                _delete_node(self.node)
            except Exception as exc:  # rows left behind change no later scenario's node
                problems.append(f"deleting node B's rows: {type(exc).__name__}: {exc}")
        return problems


def _delete_node(node) -> None:
    from django.db import transaction

    from identity.models import DkimKey
    from mailboxes.models import Alias, Domain, Mailbox
    from nodes.models import NodeChange

    with transaction.atomic():
        Alias.objects.filter(domain__node=node).delete()
        Mailbox.objects.filter(domain__node=node).delete()
        DkimKey.objects.filter(domain__node=node).delete()
        Domain.objects.filter(node=node).delete()
        NodeChange.objects.filter(node=node).delete()
        node.delete()


class BusyNode:
    """Node A rebuilding from empty in B4's child process, pass after pass, while B is
    measured. Leaving stops the pass under way: A's state dir is then partial."""

    def __init__(self, ctx: Ctx, *, nice: int = 0):
        self.ctx, self.nice = ctx, nice
        self.passes: list[float] = []  # seconds of each finished pass
        self.error: str | None = None
        self.proc: subprocess.Popen | None = None
        self.running_at_end = False
        self.trash: list = []  # the state dirs moved aside, removed after the phase
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="busy-node-a", daemon=True)

    def _empty_state_dir(self) -> None:
        """Move A's state dir aside (one rename: removing 100,000 maildirs here would be work
        in the measuring process); it is removed after the phase."""
        state = self.ctx.env.state_dir
        if state.exists():
            aside = state.with_name(f"{state.name}-old{len(self.trash)}-{self.nice}")
            state.rename(aside)
            self.trash.append(aside)

    def _loop(self) -> None:
        argv = [sys.executable, "-m", "bench.reconcile_child"]
        if self.nice:
            argv = ["nice", "-n", str(self.nice), *argv]  # exec()s: the pid stays the child's
        log = self.ctx.env.log_dir / f"reconcile-b10-nice{self.nice}.log"
        with open(log, "wb") as out:
            while True:
                with self._lock:
                    if self._stop.is_set():
                        return
                    self._empty_state_dir()
                    started = time.perf_counter()
                    self.proc = subprocess.Popen(argv, cwd=ROOT, stdin=subprocess.DEVNULL,
                                                 stdout=out, stderr=out)
                code = self.proc.wait()
                if self._stop.is_set():
                    return
                if code != 0:
                    self.error = f"exit {code}, see {log}"
                    return
                self.passes.append(round(time.perf_counter() - started, 1))

    def __enter__(self) -> "BusyNode":
        self.ctx.stack.stop()
        self._thread.start()
        time.sleep(2.0)  # the first pass is past its start-up and into the rows
        return self

    def __exit__(self, *exc_info) -> None:
        with self._lock:
            self._stop.set()
            self.running_at_end = self.proc is not None and self.proc.poll() is None
            if self.running_at_end:
                self.proc.terminate()
        self._thread.join()
        for aside in self.trash:
            shutil.rmtree(aside, ignore_errors=True)
        if self.error is not None:
            raise BenchError(f"node A's busy reconcile failed: {self.error}")

    def summary(self) -> dict:
        return {"nice": self.nice, "passes_finished": len(self.passes),
                "pass_seconds": self.passes, "pass_running_at_end": self.running_at_end}


def _loadavg() -> list[float]:
    import os

    return [round(x, 2) for x in os.getloadavg()]


def isolation(ctx: Ctx, node_b: NodeB, *, samples: int) -> dict:
    """B's create → live with A idle, then while A rebuilds from empty (nice 0, then nice 10).
    A is left stopped and half rebuilt (the runner puts B10 where nothing needs A after)."""
    target = node_b.target()
    result = {"busy_mailboxes": ctx.mailboxes, "node_b_mailboxes": target.mailboxes,
              "samples": samples}
    create_live(ctx, tag="b10w", samples=2, node=target)  # warm-up: connections, caches
    result["idle"] = create_live(ctx, tag="b10i", samples=samples, node=target)
    result["idle"]["loadavg"] = _loadavg()
    for key, nice in (("busy", 0), ("niced", 10)):
        with BusyNode(ctx, nice=nice) as busy:
            result[key] = create_live(ctx, tag=f"b10{key[0]}", samples=samples, node=target)
            result[key]["loadavg"] = _loadavg()
        result[key]["node_a"] = busy.summary()
        if not busy.running_at_end and not busy.passes:
            raise BenchError("node A's reconcile was not running while B was measured")
    idle_p95, idle_median = result["idle"]["live_ms"]["p95"], result["idle"]["live_ms"]["median"]
    for key in ("busy", "niced"):
        live = result[key]["live_ms"]
        result[f"{key}_ratio_p95"] = round(live["p95"] / idle_p95, 2)
        result[f"{key}_ratio_median"] = round(live["median"] / idle_median, 2)
    return result
