"""The BackupRun record around each run: running → ok / failed, with its figures."""

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from django.db import transaction
from django.utils import timezone

from backups.models import BackupRun, RunStatus
from tenants.access import Actor

Progress = Callable[[str], None]


def quiet(_line: str) -> None:
    """The default progress reporter: says nothing."""


@contextmanager
def recorded_run(*, actor: Actor, kind: str, scope: str, target: str,
                 run: BackupRun | None = None) -> Iterator[BackupRun]:
    """Mark the run running; on exit ok, or failed with the error (which is re-raised)."""
    if run is None:
        run = BackupRun(kind=kind, scope=scope, target=target, requested_by=actor.label[:200])
    run.status, run.started_at, run.target = RunStatus.RUNNING, timezone.now(), target
    run.save()
    try:
        yield run
    except Exception as exc:
        run.status, run.error = RunStatus.FAILED, str(exc)[:4000]
        run.finished_at = timezone.now()
        run.save()
        raise
    run.status, run.finished_at = RunStatus.OK, timezone.now()
    run.save()


def backup_request(*, actor: Actor, scope: str, target: str,
                   enqueue: Callable[[int], None]) -> BackupRun:
    """A queued backup run, started by `enqueue(run id)` once the row is committed."""
    run = BackupRun.objects.create(kind="backup", scope=scope, target=target or "default",
                                   requested_by=actor.label[:200])
    transaction.on_commit(lambda: enqueue(run.pk))
    return run
