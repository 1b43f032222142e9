"""Retention: deleted mailboxes are forgotten, and their archived mail removed, once the
retention period is over."""

import datetime as dt
import functools

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from mailboxes.models import (
    Mailbox,
)
from nodes.queues import node_queue
from nodes.tasks import purge_archives
from tenants.access import SYSTEM
from tenants.audit import audit_record

# --- retention -------------------------------------------------------------------------------


def mailbox_purge_expired(*, now=None) -> int:
    """Forget mailboxes deleted longer ago than MAILHOST_DELETED_RETENTION_DAYS and remove
    their archived mail on the node. Returns how many were purged."""
    cutoff = (now or timezone.now()) - dt.timedelta(days=settings.MAILHOST_DELETED_RETENTION_DAYS)
    expired = Mailbox.objects.filter(deleted_at__lte=cutoff).select_related("domain__node")
    by_node: dict[tuple[int, str], list[str]] = {}
    with transaction.atomic():
        for mailbox in expired.select_for_update(of=("self",)):
            node = mailbox.domain.node
            by_node.setdefault((node.pk, node.name), []).append(str(mailbox.home_id))
            audit_record(
                actor=SYSTEM,
                organisation_id=mailbox.domain.organisation_id,
                action="mailbox.purge",
                target_type="mailbox",
                target=mailbox.address,
            )
            mailbox.delete()
        for (node_id, name), home_ids in by_node.items():
            transaction.on_commit(
                functools.partial(
                    purge_archives.apply_async, args=[node_id, home_ids], queue=node_queue(name)
                )
            )
    return sum(map(len, by_node.values()))
