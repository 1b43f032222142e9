"""Celery tasks for the mail state: reconcile a node, incrementally or in full; purge."""

import logging
import sqlite3

from celery import shared_task
from django.db import OperationalError

from mailboxes.models import MailNode

logger = logging.getLogger(__name__)

TRANSIENT = (OperationalError, sqlite3.OperationalError, OSError)


def schedule_reconcile(node_id: int) -> None:
    """Enqueue an incremental reconcile of a node (called on commit by `record_change`)."""
    from mailboxes.reconcile import enqueue_coalesced

    enqueue_coalesced(node_id)


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
    from mailboxes.reconcile import clear_pending, reconcile_full, reconcile_incremental

    clear_pending(node_id)
    node = MailNode.objects.get(pk=node_id)
    if _rebuild_everything():
        return reconcile_full(node, incremental_first=False).revision
    return reconcile_incremental(node)


def _rebuild_everything() -> bool:
    """MAILHOST_RECONCILE_FORCE_FULL=true (benchmarks only, never in production): every change
    re-renders and re-applies the whole node, the design `make bench` (B7) compares against."""
    from mailhost.env import env_bool

    return env_bool("MAILHOST_RECONCILE_FORCE_FULL", False)


@shared_task(name="mailboxes.reconcile_node_full", acks_late=True, autoretry_for=TRANSIENT,
             retry_backoff=True, max_retries=3)
def reconcile_node_full(node_id: int) -> int:
    """Diff every row and managed file of the node, report drift and repair it."""
    from mailboxes.reconcile import reconcile_full

    report = reconcile_full(MailNode.objects.get(pk=node_id))
    return len(report.drift)


@shared_task(name="mailboxes.reconcile_all_full")
def reconcile_all_full() -> None:
    """Beat: a full reconcile of every node, each on its own queue."""
    from mailboxes.reconcile import node_queue

    for node_id, name in MailNode.objects.values_list("pk", "name"):
        reconcile_node_full.apply_async(args=[node_id], queue=node_queue(name))


@shared_task(name="mailboxes.renew_certificates", acks_late=True)
def renew_certificates(node_id: int) -> dict:
    """On the node's queue: obtain the node's due certificates (ACME), within the back-off."""
    from mailboxes.certificates import alert_staff, renew_node_certificates

    node = MailNode.objects.get(pk=node_id)
    result = renew_node_certificates(node)
    alerted = alert_staff(node)
    return {"issued": result.issued, "failed": result.failed, "deferred": result.deferred,
            "alerted": alerted}


@shared_task(name="mailboxes.renew_all_certificates")
def renew_all_certificates() -> None:
    """Beat: each node renews its certificates on its own queue (no-op while ACME is off)."""
    from django.conf import settings

    from mailboxes.reconcile import node_queue

    if not settings.MAILHOST_ACME_DIRECTORY_URL:
        return
    for node_id, name in MailNode.objects.values_list("pk", "name"):
        renew_certificates.apply_async(args=[node_id], queue=node_queue(name))


@shared_task(name="mailboxes.purge_deleted_mailboxes")
def purge_deleted_mailboxes() -> int:
    """Beat: forget mailboxes deleted longer ago than the retention period, and their mail."""
    from mailboxes.services import mailbox_purge_expired

    return mailbox_purge_expired()


@shared_task(name="mailboxes.purge_archives", acks_late=True)
def purge_archives(node_id: int, home_ids: list[str]) -> None:
    from pathlib import Path

    from mailboxes.reconcile import purge_archives as purge

    purge(Path(MailNode.objects.get(pk=node_id).state_dir), home_ids)


@shared_task(name="mailboxes.collect_usage", autoretry_for=TRANSIENT, max_retries=3)
def collect_usage(node_id: int) -> int:
    """On the node: read Dovecot's quota use for every mailbox into the central database."""
    from pathlib import Path

    from mailboxes.services import mailbox_usage_record
    from mailhost.backend.config import NodeConfig
    from mailhost.backend.stack import Stack

    node = MailNode.objects.get(pk=node_id)
    stack = Stack(NodeConfig.from_settings(state_dir=Path(node.state_dir)))
    if not stack.is_running():
        return 0
    return mailbox_usage_record(node_id=node_id, usage=stack.quota_usage())


@shared_task(name="mailboxes.collect_usage_all")
def collect_usage_all() -> None:
    """Beat: ask every node for its mailboxes' storage use, each on its own queue."""
    from mailboxes.reconcile import node_queue

    for node_id, name in MailNode.objects.values_list("pk", "name"):
        collect_usage.apply_async(args=[node_id], queue=node_queue(name))
