"""Celery tasks for mailboxes: purge deleted ones, collect their storage use from the nodes."""

from pathlib import Path

from celery import shared_task

from mailboxes.services import mailbox_purge_expired, mailbox_usage_record
from mailhost.backend.config import NodeConfig
from mailhost.backend.stack import Stack
from nodes.models import MailNode
from nodes.queues import node_queue
from nodes.tasks import TRANSIENT


@shared_task(name="mailboxes.purge_deleted_mailboxes")
def purge_deleted_mailboxes() -> int:
    """Beat: forget mailboxes deleted longer ago than the retention period, and their mail."""
    return mailbox_purge_expired()


@shared_task(name="mailboxes.collect_usage", autoretry_for=TRANSIENT, max_retries=3)
def collect_usage(node_id: int) -> int:
    """On the node: read Dovecot's quota use for every mailbox into the central database."""
    node = MailNode.objects.get(pk=node_id)
    stack = Stack(NodeConfig.from_settings(state_dir=Path(node.state_dir)))
    if not stack.is_running():
        return 0
    return mailbox_usage_record(node_id=node_id, usage=stack.quota_usage())


@shared_task(name="mailboxes.collect_usage_all")
def collect_usage_all() -> None:
    """Beat: ask every node for its mailboxes' storage use, each on its own queue."""
    for node_id, name in MailNode.objects.values_list("pk", "name"):
        collect_usage.apply_async(args=[node_id], queue=node_queue(name))
