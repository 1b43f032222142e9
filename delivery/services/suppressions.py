"""Suppression lists: add (by hand, or automatically on a hard bounce), remove, consult. The
node's copy that SMTP submission is held to is rendered by the reconciler (delivery.snapshot)."""

import re

from django.db import transaction
from django.db.models import QuerySet

from delivery import node
from delivery.models import Message, Suppression, SuppressionReason, SuppressionScope
from mailhost.errors import Invalid, NotFound
from mailhost.names import InvalidName, normalise_address, normalise_domain
from tenants.access import SYSTEM, Actor, require_read, require_write
from tenants.audit import audit_record
from tenants.models import Organisation

# Hard bounces that suppress the address by themselves: 5.1.x says the address is wrong (no
# such mailbox 5.1.1, no such domain 5.1.2, bad syntax 5.1.3, moved 5.1.6, null MX 5.1.10).
# Full mailboxes (5.2.2), policy and content refusals (5.7.x) do not: they may pass.
HARD_BOUNCE = re.compile(r"^5\.1\.\d{1,3}$")


def parse_value(raw: str) -> tuple[str, str]:
    """(scope, value): an address, or a domain (all of its addresses)."""
    raw = (raw or "").strip()
    try:
        if "@" in raw:
            return SuppressionScope.ADDRESS, normalise_address(raw)
        return SuppressionScope.DOMAIN, normalise_domain(raw)
    except InvalidName as exc:
        raise Invalid(f"{exc} Suppress an address or a domain name.", field="value") from exc


def suppression_add(
    *, actor: Actor, organisation: Organisation, value: str, detail: str = "",
    reason: str = SuppressionReason.MANUAL, message: Message | None = None,
) -> tuple[Suppression, bool]:
    """Suppress `value` for the organisation (idempotent); True when it is new."""
    require_write(actor, organisation.id)
    scope, value = parse_value(value)
    with transaction.atomic():
        suppression, created = Suppression.objects.get_or_create(
            organisation=organisation, value=value,
            defaults={"scope": scope, "reason": reason, "detail": detail[:500],
                      "message": message},
        )
        if created:
            audit_record(actor=actor, organisation_id=organisation.id, action="suppression.add",
                         target_type="suppression", target=value,
                         after={"scope": scope, "reason": reason})
            node.record_outbound_change(organisation)
    return suppression, created


def suppression_remove(*, actor: Actor, organisation: Organisation, value: str) -> None:
    require_write(actor, organisation.id)
    _, value = parse_value(value)
    with transaction.atomic():
        deleted, _ = Suppression.objects.filter(organisation=organisation, value=value).delete()
        if not deleted:
            raise NotFound("That address or domain is not suppressed.")
        audit_record(actor=actor, organisation_id=organisation.id, action="suppression.remove",
                     target_type="suppression", target=value)
        node.record_outbound_change(organisation)


def suppression_list(actor: Actor, organisation: Organisation) -> QuerySet[Suppression]:
    require_read(actor, organisation.id)
    return Suppression.objects.filter(organisation=organisation).order_by("value", "id")


def suppressed_among(organisation: Organisation, addresses: list[str]) -> set[str]:
    """Which of `addresses` the organisation suppresses (by address or by domain)."""
    domains = {a.rpartition("@")[2] for a in addresses}
    values = set(Suppression.objects.filter(
        organisation=organisation, value__in=set(addresses) | domains
    ).values_list("value", flat=True))
    return {a for a in addresses if a in values or a.rpartition("@")[2] in values}


def suppress_hard_bounce(*, message: Message, recipient: str, dsn: str, reply: str) -> bool:
    """Called for each bounce event: a 5.1.x suppresses the address automatically."""
    if not recipient or not HARD_BOUNCE.match(dsn or ""):
        return False
    _, created = suppression_add(
        actor=SYSTEM, organisation=message.organisation, value=recipient,
        reason=SuppressionReason.HARD_BOUNCE, detail=f"{dsn} {reply}", message=message,
    )
    return created
