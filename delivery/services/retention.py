"""How long the portal keeps its delivery records (messages, their recipients, timelines and
webhook deliveries): MAILHOST_DELIVERY_RETENTION_DAYS, purged by a periodic task."""

import datetime as dt
import logging

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from delivery.models import Message

logger = logging.getLogger(__name__)
PURGE_BATCH = 1000


def messages_purge(*, now: dt.datetime | None = None, batch: int = PURGE_BATCH) -> int:
    """Delete the messages older than the retention period, with everything recorded about
    them, a batch per transaction (a long backlog never holds one huge lock); returns how many.
    A suppression a bounce caused stays (it forgets only which message it was)."""
    cutoff = (now or timezone.now()) - dt.timedelta(days=settings.MAILHOST_DELIVERY_RETENTION_DAYS)
    total = 0
    while True:
        with transaction.atomic():
            ids = list(Message.objects.filter(created_at__lt=cutoff)
                       .order_by("created_at").values_list("id", flat=True)[:batch])
            if not ids:
                break
            Message.objects.filter(id__in=ids).delete()
        total += len(ids)
    if total:
        logger.info("purged %d delivery records older than %s", total, cutoff.isoformat())
    return total
