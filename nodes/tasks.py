"""Celery tasks of the node control plane: reconcile a node, incrementally or in full; purge
archived maildirs; renew the node's certificates. The registered names of the older tasks keep
their `mailboxes.` prefix so tasks queued before the move (and the beat schedule) still find
them; tasks added since are named `nodes.`."""

import logging
import sqlite3
from pathlib import Path

from celery import shared_task
from django.conf import settings
from django.db import OperationalError

from mailhost.env import env_bool
from nodes import certificates, reconcile
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


@shared_task(name="nodes.renew_certificates", acks_late=True)
def renew_certificates(node_id: int) -> dict:
    """On the node's queue: obtain the node's due certificates (ACME), within the back-off."""
    node = MailNode.objects.get(pk=node_id)
    result = certificates.renew_node_certificates(node)
    alerted = certificates.alert_staff(node)
    return {"issued": result.issued, "failed": result.failed, "deferred": result.deferred,
            "alerted": alerted}


@shared_task(name="nodes.renew_all_certificates")
def renew_all_certificates() -> None:
    """Beat: each node renews its certificates on its own queue (no-op while ACME is off)."""
    if not settings.MAILHOST_ACME_DIRECTORY_URL:
        return
    for node_id, name in MailNode.objects.values_list("pk", "name"):
        renew_certificates.apply_async(args=[node_id], queue=node_queue(name))
