"""Housekeeping: each kind of data is kept for its configured time, then pruned by a scheduled
job; every run is recorded (HousekeepingRun) and its outcome is a status check
("housekeeping:<job>"), so a job that starts failing alerts once, like any other check.

Jobs (README "Housekeeping"): the reports' retention (reports.retention), mailboxes deleted
longer ago than MAILHOST_DELETED_RETENTION_DAYS and their archived mail (mailboxes), the
inbound mail-flow counters, the status page's own alerts and run log, and each node's daemon
logs (on the node's queue: mailhost.backend.logrotate).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from pathlib import Path

from django.conf import settings
from django.utils import timezone

from identity.models import InboundFlow
from mailboxes.services import mailbox_purge_expired
from mailhost.backend.config import NodeConfig
from mailhost.backend.logrotate import rotate_logs
from nodes.models import MailNode
from reports.retention import reports_prune, retention_cutoff
from status.checks import Result
from status.models import HousekeepingRun, State, StatusAlert
from status.services import status_record

logger = logging.getLogger(__name__)


def inbound_flow_prune(now: dt.datetime) -> dict[str, int]:
    cutoff = retention_cutoff(settings.MAILHOST_INBOUND_FLOW_RETENTION_DAYS, now)
    if cutoff is None:
        return {"inbound-flow": 0}
    return {"inbound-flow": InboundFlow.objects.filter(day__lt=cutoff.date()).delete()[0]}


def status_prune(now: dt.datetime) -> dict[str, int]:
    cutoff = retention_cutoff(settings.MAILHOST_STATUS_HISTORY_RETENTION_DAYS, now)
    if cutoff is None:
        return {"alerts": 0, "runs": 0}
    return {
        "alerts": StatusAlert.objects.filter(created_at__lt=cutoff).delete()[0],
        "runs": HousekeepingRun.objects.filter(started_at__lt=cutoff).delete()[0],
    }


JOBS: dict[str, Callable[[dt.datetime], dict[str, int]]] = {
    "reports": lambda now: reports_prune(now=now),
    "deleted-mailboxes": lambda now: {"mailboxes": mailbox_purge_expired(now=now)},
    "inbound-flow": inbound_flow_prune,
    "status-history": status_prune,
}


def node_logs(node: MailNode) -> Callable[[dt.datetime], dict[str, int]]:
    """The job rotating one node's daemon logs (run on the node: the logs are node-local)."""
    def run(now: dt.datetime) -> dict[str, int]:
        cfg = NodeConfig.from_settings(state_dir=Path(node.state_dir))
        return rotate_logs(cfg.path("log"), max_bytes=settings.MAILHOST_LOG_MAX_BYTES,
                           keep_days=settings.MAILHOST_LOG_RETENTION_DAYS, now=now)
    return run


def housekeeping_run(job: str, work: Callable[[dt.datetime], dict[str, int]] | None = None, *,
                     now: dt.datetime | None = None) -> HousekeepingRun:
    """Run one job (a name of JOBS, or `work` under that name), record the run and its check."""
    work = work or JOBS[job]
    started = now or timezone.now()
    try:
        result, error = work(started), ""
    except Exception as exc:  # recorded and alerted, never lost in a worker log
        logger.exception("housekeeping %s failed", job)
        result, error = {}, f"{type(exc).__name__}: {exc}"[:2000]
    run = HousekeepingRun.objects.create(job=job, started_at=started,
                                         finished_at=timezone.now(), ok=not error,
                                         result=result, error=error)
    summary = ", ".join(f"{name}: {count}" for name, count in result.items()) or "nothing to do"
    status_record([Result(
        f"housekeeping:{job}", "housekeeping", f"Housekeeping: {job}",
        State.PROBLEM if error else State.OK,
        f"Failed: {error}" if error else f"Last run removed {summary}.",
        data={"run": run.pk},
    )], now=started)
    return run
