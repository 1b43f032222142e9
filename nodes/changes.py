"""The desired-state revision of a node and the change log the incremental reconciler reads.

A service that changes mail state calls `record_change` inside its transaction. The bump is an
UPDATE on the node row, so concurrent writers to one node queue on its row lock and revisions
commit in order: every committed revision is a contiguous prefix, and "applied revision ≥ N"
means "everything up to N is live".
"""

from django.conf import settings
from django.db import transaction
from django.db.models import F

from nodes.models import MailNode, NodeChange
from nodes.scheduling import schedule_reconcile


def node_default() -> MailNode:
    node, _ = MailNode.objects.get_or_create(
        name=settings.MAILHOST_NODE_NAME,
        defaults={"state_dir": str(settings.MAILHOST_NODE_STATE_DIR)},
    )
    return node


def record_change(*, node_id: int, kind: str, object_id: int) -> int:
    """Bump the node's desired revision, log what changed, and schedule a reconcile on commit."""
    MailNode.objects.filter(pk=node_id).update(desired_revision=F("desired_revision") + 1)
    revision = MailNode.objects.values_list("desired_revision", flat=True).get(pk=node_id)
    NodeChange.objects.create(node_id=node_id, revision=revision, kind=kind, object_id=object_id)
    transaction.on_commit(lambda: schedule_reconcile(node_id))
    return revision
