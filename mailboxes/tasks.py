"""Celery tasks for the mail state: reconcile a node, incrementally or in full."""

import logging

from celery import shared_task

from mailboxes.models import MailNode

logger = logging.getLogger(__name__)


def schedule_reconcile(node_id: int) -> None:
    """Enqueue an incremental reconcile of a node (called on commit by `record_change`)."""
    from mailboxes.reconcile import enqueue_coalesced

    enqueue_coalesced(node_id)


@shared_task(name="mailboxes.reconcile_node", acks_late=True)
def reconcile_node(node_id: int) -> int:
    """Apply the node's pending changes; returns the revision now applied. Idempotent."""
    from mailboxes.reconcile import clear_pending, reconcile_incremental

    clear_pending(node_id)
    node = MailNode.objects.get(pk=node_id)
    return reconcile_incremental(node)
