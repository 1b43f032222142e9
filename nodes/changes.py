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
    """Bump the node's desired revision, log what changed, and schedule a reconcile on commit.
    A domain's change also reaches the other nodes, on commit: their transports to it."""
    revision = record_changes(node_id=node_id, kind=kind)
    NodeChange.objects.create(node_id=node_id, revision=revision, kind=kind, object_id=object_id)
    if kind == NodeChange.Kind.DOMAIN:
        _tell_peers_on_commit(node_id)
    return revision


class _PeerNotice:
    """The on-commit call telling the other nodes about one node's domains."""

    def __init__(self, node_id: int):
        self.node_id = node_id

    def __call__(self) -> None:
        record_peer_changes(node_id=self.node_id)


def _tell_peers_on_commit(node_id: int) -> None:
    """Once per node per transaction, however many of its domains change in it (suspending an
    organisation changes all of its domains: one notice, not one per domain). A notice
    registered in a savepoint that rolled back is gone from the list, so it is registered
    again. (Reads Django's pending on-commit list, `connection.run_on_commit`: entries are
    (savepoint ids, callable, robust) since Django 4.2.)"""
    connection = transaction.get_connection()
    pending = connection.run_on_commit if connection.in_atomic_block else []
    if any(isinstance(call, _PeerNotice) and call.node_id == node_id
           for _, call, *_ in pending):
        return
    transaction.on_commit(_PeerNotice(node_id))


def record_peer_changes(*, node_id: int) -> None:
    """Tell every other node that `node_id`'s domains changed (their transports to it).

    After the domain's own commit and one node per transaction, never in the domain's: two
    domains changing on two nodes at once would otherwise each hold its node's row and wait for
    the other's (a deadlock). Lost if the process dies in between; the periodic full reconcile
    renders the transports from scratch and repairs that."""
    for other in MailNode.objects.exclude(pk=node_id).order_by("pk").values_list("pk", flat=True):
        with transaction.atomic():
            revision = record_changes(node_id=other, kind=NodeChange.Kind.PEERS)
            NodeChange.objects.create(node_id=other, revision=revision,
                                      kind=NodeChange.Kind.PEERS, object_id=node_id)


def record_changes(*, node_id: int, kind: str) -> int:
    """Bump the node's desired revision once for a set of changes and schedule a reconcile on
    commit; the caller logs each changed object at the returned revision (a bulk insert of
    NodeChange rows), so a batch of objects is one revision."""
    MailNode.objects.filter(pk=node_id).update(desired_revision=F("desired_revision") + 1)
    revision = MailNode.objects.values_list("desired_revision", flat=True).get(pk=node_id)
    transaction.on_commit(lambda: schedule_reconcile(node_id))
    return revision
