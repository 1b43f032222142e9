"""Reads of outbound messages, always through the actor's organisations."""

import datetime as dt
import uuid

from django.db.models import Prefetch, QuerySet

from delivery import node
from delivery.models import Message, MessageTag, Recipient, SendingQuota
from mailboxes.models import Domain
from mailhost.backend.quotas import usage
from mailhost.errors import NotFound
from tenants.access import Actor, require_read, visible_organisations
from tenants.models import Organisation


def _with_details(messages: QuerySet[Message]) -> QuerySet[Message]:
    return messages.select_related("domain").prefetch_related(
        Prefetch("recipients", queryset=Recipient.objects.order_by("id")),
        Prefetch("tags", queryset=MessageTag.objects.order_by("name")),
    )


def message_get(actor: Actor, message_id: str | uuid.UUID) -> Message:
    """One message of an organisation the actor may read; another tenant's is a 404."""
    try:
        pk = message_id if isinstance(message_id, uuid.UUID) else uuid.UUID(str(message_id))
    except ValueError as exc:
        raise NotFound("That message was not found.") from exc
    message = _with_details(Message.objects.filter(pk=pk)).prefetch_related("events").first()
    if message is None:
        raise NotFound("That message was not found.")
    require_read(actor, message.organisation_id, "That message")
    return message


def message_list(
    actor: Actor,
    *,
    organisation: Organisation | None = None,
    recipient: str | None = None,
    status: str | None = None,
    tag: str | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
) -> QuerySet[Message]:
    """Newest first. `recipient` matches a recipient's address exactly (case-insensitive), or
    a part of it; `status` a recipient's status."""
    if organisation is not None:
        require_read(actor, organisation.id)
        messages = Message.objects.filter(organisation=organisation)
    else:
        messages = Message.objects.filter(organisation__in=visible_organisations(actor))
    if recipient:
        messages = messages.filter(recipients__address__contains=recipient.lower())
    if status:
        messages = messages.filter(recipients__status=status)
    if tag:
        messages = messages.filter(tags__name=tag)
    if since:
        messages = messages.filter(created_at__gte=since)
    if until:
        messages = messages.filter(created_at__lt=until)
    if recipient or status:
        messages = messages.distinct()
    return _with_details(messages.order_by("-created_at", "id"))


def quota_usage(domain: Domain) -> dict[str, dict]:
    """{scope: {"limits", "used"}} for the domain's and its organisation's sending quotas: this
    hour's and today's messages and those waiting in the queue now, as the node counts them
    (its own counters; the node enforces the limits)."""
    store = node.quotas_store(domain.node)
    quotas = SendingQuota.objects.filter(organisation_id=domain.organisation_id,
                                         ).select_related("domain")
    return {q.scope: {"limits": q.limits(), "used": usage(store, q.scope)}
            for q in quotas if q.domain_id in (None, domain.id)}


def sending_refusals() -> list[tuple[str, str, str, int]]:
    """(node, organisation slug, reason, messages) the nodes' sending limits refused since
    each node's store began (for /metrics: the system's read, no actor). A domain's own limit
    counts for its organisation, so the labels stay bounded by organisations x reasons; a
    scope whose organisation or domain is gone is left out."""
    per_node = node.quota_refusals()
    scopes = {scope for counts in per_node.values() for scope, _ in counts}
    org_ids = {int(s[4:]) for s in scopes if s.startswith("org:") and s[4:].isdigit()}
    domains = [s[7:] for s in scopes if s.startswith("domain:")]
    slugs = dict(Organisation.objects.filter(id__in=org_ids).values_list("id", "slug"))
    owner = {f"org:{pk}": slug for pk, slug in slugs.items()}
    owner |= {f"domain:{name}": slug for name, slug in
              Domain.objects.filter(name__in=domains).values_list("name", "organisation__slug")}
    summed: dict[tuple[str, str, str], int] = {}
    for node_name, counts in per_node.items():
        for (scope, reason), n in counts.items():
            if scope in owner:
                key = (node_name, owner[scope], reason)
                summed[key] = summed.get(key, 0) + n
    return [(*key, n) for key, n in sorted(summed.items())]
