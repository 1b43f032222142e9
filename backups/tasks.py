"""Celery tasks: a backup staff asked for, and the scheduled whole-install backup + prune."""

import logging

from celery import shared_task

from backups.models import BackupRun
from backups.selectors import scope_resolve
from backups.services import backup_run, prune_target
from backups.targets import configured, target_from_spec
from tenants.access import Actor

logger = logging.getLogger(__name__)
SCHEDULER = Actor(system="backup schedule")


@shared_task(name="backups.run_backup")
def run_backup(run_id: int, target: str = "") -> int:
    """A backup staff started from /mail-admin/backups/ (its BackupRun is already queued)."""
    run = BackupRun.objects.get(pk=run_id)
    spec = "" if target == "default" else target
    backup_run(actor=SCHEDULER, scope=scope_resolve(SCHEDULER, run.scope),
               target=target_from_spec(spec), run=run)
    return run.pk


@shared_task(name="backups.backup_install")
def backup_install() -> int | None:
    """Beat, daily: the whole install to the configured target, then retention. Off (returns
    None) while neither MAILHOST_BACKUP_DIR nor an S3 bucket is set."""
    if not configured():
        return None
    target = target_from_spec()
    run = backup_run(actor=SCHEDULER, scope=scope_resolve(SCHEDULER, "install"), target=target)
    prune_target(actor=SCHEDULER, target=target)
    return run.pk
