"""Celery tasks of the outbound channel."""

from celery import shared_task

from delivery import node
from delivery.models import WebhookDelivery, WebhookState
from delivery.services.events import BATCH, events_collect
from delivery.services.retention import messages_purge
from delivery.services.webhooks import due_ids, webhook_attempt
from nodes.collect import collect_from_every_node
from nodes.scheduling import schedule_reconcile


@shared_task(name="delivery.collect_events", ignore_result=True)
def collect_events() -> int:
    """Pull every node's new delivery events (the node keeps them until we do)."""
    return collect_from_every_node(
        lambda name, store: events_collect(node_name=name, store=store),
        batch=BATCH, what="delivery events")


@shared_task(name="delivery.sync_node", ignore_result=True)
def sync_node(node_id: int | None = None) -> None:
    """Kept for tasks queued by an older release: the outbound stores are now rendered by the
    node's reconcile (delivery.snapshot), which this schedules."""
    for mail_node in [n for n in [node.node_get(node_id)] if n] if node_id else node.all_nodes():
        schedule_reconcile(mail_node.pk)


@shared_task(name="delivery.deliver_webhook", ignore_result=True)
def deliver_webhook(delivery_id: int) -> str | None:
    """One attempt at one webhook delivery; a failure is retried after its backoff."""
    state = webhook_attempt(delivery_id)
    if state == WebhookState.PENDING:
        delay = WebhookDelivery.objects.filter(pk=delivery_id).values_list(
            "next_attempt_at", flat=True).first()
        if delay is not None:
            deliver_webhook.apply_async(args=[delivery_id], eta=delay)
    return state


@shared_task(name="delivery.webhooks_due", ignore_result=True)
def webhooks_due() -> int:
    """Queue every delivery whose attempt is due (new ones, retries a lost task missed)."""
    ids = due_ids()
    for delivery_id in ids:
        deliver_webhook.delay(delivery_id)
    return len(ids)


@shared_task(name="delivery.purge_records", ignore_result=True)
def purge_records() -> int:
    """Delivery records past MAILHOST_DELIVERY_RETENTION_DAYS go (housekeeping, hourly)."""
    return messages_purge()
