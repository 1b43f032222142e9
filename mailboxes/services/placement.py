"""Which mail node a new domain lives on: the staff's choice, else the least-loaded node."""

from django.conf import settings
from django.db.models import Case, Count, IntegerField, OuterRef, Subquery, Value, When
from django.db.models.functions import Coalesce

from mailboxes.models import Domain, Mailbox
from mailhost.errors import Forbidden, Invalid
from nodes.changes import node_default
from nodes.models import MailNode
from tenants.access import Actor


def _count(queryset, node_field: str) -> Coalesce:
    """A per-node count as a subquery: two counted joins on one query would multiply."""
    counted = (queryset.filter(**{node_field: OuterRef("pk")}).order_by()
               .values(node_field).annotate(n=Count("pk")).values("n"))
    return Coalesce(Subquery(counted, output_field=IntegerField()), Value(0))


def least_loaded_node() -> MailNode:
    """The node with the fewest mailboxes, then the fewest domains; ties go to the install's
    default node (MAILHOST_NODE_NAME), then by name. The default node when there is none.
    With one node nothing is counted (a count walks every mailbox)."""
    if MailNode.objects.count() <= 1:
        return MailNode.objects.first() or node_default()
    nodes = MailNode.objects.annotate(
        mailbox_count=_count(Mailbox.objects.filter(deleted_at=None), "domain__node"),
        domain_count=_count(Domain.objects.all(), "node"),
        not_default=Case(When(name=settings.MAILHOST_NODE_NAME, then=0), default=1,
                         output_field=IntegerField()),
    ).order_by("mailbox_count", "domain_count", "not_default", "name")
    return nodes.first() or node_default()


def node_for_new_domain(*, actor: Actor, node_name: str | None = None) -> MailNode:
    """The node a new domain goes on. Only the mail service's staff may choose one (the nodes
    are the service's business, not a tenant's); otherwise the least-loaded node."""
    if node_name in (None, ""):
        return least_loaded_node()
    if not actor.is_global:
        raise Forbidden("Only the mail service's staff choose the node a domain lives on.",
                        field="node", code="node_set_by_staff")
    node = MailNode.objects.filter(name=node_name).first() if isinstance(node_name, str) else None
    if node is None:
        raise Invalid(f"There is no mail node named {node_name!r}.", field="node",
                      code="unknown_node")
    return node

