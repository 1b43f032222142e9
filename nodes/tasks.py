"""Celery tasks of the node control plane: reconcile a node, incrementally or in full; purge
archived maildirs. The registered names keep their old `mailboxes.` prefix so tasks queued before
the move (and the beat schedule) still find them."""

import logging
import sqlite3
from pathlib import Path

from celery import shared_task
from django.db import OperationalError

from mailhost.env import env_bool
from nodes import reconcile
from nodes.models import MailNode
from nodes.queues import clear_pending, node_queue

logger = logging.getLogger(__name__)

TRANSIENT = (OperationalError, sqlite3.OperationalError, OSError)


@shared_task(
    name="mailboxes.reconcile_node",
    acks_late=True,  # safe: applying a revision twice changes nothing
    autoretry_for=TRANSIENT,
    retry_backoff=True,
    retry_backoff_max=60,
    max_retries=8,
)
def reconcile_node(node_id: int) -> int:
    """Apply the node's pending changes; returns the revision now applied."""
    clear_pending(node_id)
    node = MailNode.objects.get(pk=node_id)
    if _rebuild_everything():
        return reconcile.reconcile_full(node, incremental_first=False).revision
    return reconcile.reconcile_incremental(node)


def _rebuild_everything() -> bool:
    """MAILHOST_RECONCILE_FORCE_FULL=true (benchmarks only, never in production): every change
    re-renders and re-applies the whole node, the design `make bench` (B7) compares against."""
    return env_bool("MAILHOST_RECONCILE_FORCE_FULL", False)


@shared_task(name="mailboxes.reconcile_node_full", acks_late=True, autoretry_for=TRANSIENT,
             retry_backoff=True, max_retries=3)
def reconcile_node_full(node_id: int) -> int:
    """Diff every row and managed file of the node, report drift and repair it."""
    report = reconcile.reconcile_full(MailNode.objects.get(pk=node_id))
    return len(report.drift)


@shared_task(name="mailboxes.reconcile_all_full")
def reconcile_all_full() -> None:
    """Beat: a full reconcile of every node, each on its own queue."""
    for node_id, name in MailNode.objects.values_list("pk", "name"):
        reconcile_node_full.apply_async(args=[node_id], queue=node_queue(name))


@shared_task(name="mailboxes.purge_archives", acks_late=True)
def purge_archives(node_id: int, home_ids: list[str]) -> None:
    reconcile.purge_archives(Path(MailNode.objects.get(pk=node_id).state_dir), home_ids)
