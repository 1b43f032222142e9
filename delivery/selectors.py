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
