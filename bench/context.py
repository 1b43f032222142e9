"""What every scenario gets: the environment, the running pieces, the seeded tenant."""

import time
from dataclasses import dataclass, field

from bench.clients import Api
from bench.env import BenchEnv
from bench.procs import Child


class BenchError(RuntimeError):
    """A scenario could not run (an error, not a missed target): the run exits non-zero."""


@dataclass(frozen=True)
class Size:
    name: str
    levels: tuple[int, ...]  # domains at each level (× seed.PER_DOMAIN mailboxes)
    live_samples: int  # B1, B2 per level
    rebuild_samples: int  # B7
    bulk_rows: int  # B3
    mail_rounds: int  # B6: rounds per configuration, alternating
    mail_per_round: int
    list_repeats: int  # B5
    b10_samples: int  # B10: per phase (A idle, busy, busy niced)
    b10_level: int = 1  # B10 runs at this level (small: 5,000 mailboxes; full: 100,000)


SIZES = {
    "small": Size("small", (10, 50), live_samples=12, rebuild_samples=3, bulk_rows=1000,
                  mail_rounds=2, mail_per_round=100, list_repeats=10, b10_samples=6),
    "full": Size("full", (10, 1000, 10_000), live_samples=50, rebuild_samples=5, bulk_rows=10_000,
                 mail_rounds=4, mail_per_round=500, list_repeats=30, b10_samples=40),
}


@dataclass
class Ctx:
    env: BenchEnv
    size: Size
    tenant: object = None  # bench.seed.Tenant
    stack: object = None  # mailhost.backend.stack.Stack
    api: Api | None = None
    probe: object = None  # bench.imap.ImapRace
    worker: Child | None = None
    web: Child | None = None
    domains: int = 0  # seeded domains now
    used_addresses: set[str] = field(default_factory=set)
    worker_peaks_mb: list[float] = field(default_factory=list)

    @property
    def mailboxes(self) -> int:
        from bench.seed import PER_DOMAIN

        return self.domains * PER_DOMAIN

    def settle(self, timeout: float = 120.0) -> None:
        """Wait until the node has applied everything asked of it (the worker is idle)."""
        from nodes.models import MailNode

        deadline = time.monotonic() + timeout
        while True:
            desired, applied = MailNode.objects.values_list(
                "desired_revision", "applied_revision"
            ).get(pk=self.tenant.node.pk)
            if applied >= desired:
                return
            if time.monotonic() > deadline:
                raise BenchError(f"node still at revision {applied} < {desired} after {timeout} s")
            if self.worker is not None and not self.worker.alive():
                raise BenchError("the Celery worker died; see var/bench/logs/worker*.log")
            time.sleep(0.02)
