"""Sending quotas: staff set them per organisation or per domain; the node enforces them."""

from django.db import transaction

from delivery import node
from delivery.models import SendingQuota
from mailboxes.models import Domain
from mailhost.backend.quotas import usage
from mailhost.errors import Invalid
from tenants.access import Actor, require_staff
from tenants.audit import audit_record
from tenants.models import Organisation


def quota_set(
    *, actor: Actor, organisation: Organisation, domain: Domain | None = None,
    max_recipients: int | None = None, hourly: int | None = None, daily: int | None = None,
    max_queued: int | None = None, login_hourly: int | None = None,
    login_daily: int | None = None,
) -> SendingQuota:
    """Set (or, with every limit empty, clear) the organisation's or one domain's quota:
    recipients per message, messages per hour and day, messages waiting in the node's queue,
    and each login's (mailbox or application sender) messages per hour and day."""
    require_staff(actor, "set sending quotas")
    if domain is not None and domain.organisation_id != organisation.id:
        raise Invalid("That domain is not this organisation's.", field="domain")
    limits = {"max_recipients": max_recipients, "hourly": hourly, "daily": daily,
              "max_queued": max_queued, "login_hourly": login_hourly,
              "login_daily": login_daily}
    with transaction.atomic():
        quota, _ = SendingQuota.objects.update_or_create(
            organisation=organisation, domain=domain, defaults=limits
        )
        audit_record(actor=actor, organisation_id=organisation.id, action="quota.set",
                     target_type="quota", target=quota.scope, after=limits)
        node.record_outbound_change(organisation)
    return quota


def quota_usage(domain: Domain) -> dict[str, dict]:
    """This hour's and today's count, and the messages waiting in the queue, against the
    domain's and its organisation's quotas (the node's own counters)."""
    store = node.quotas_store(domain.node)
    quotas = SendingQuota.objects.filter(organisation=domain.organisation).select_related("domain")
    return {q.scope: {"limits": q.limits(), "used": usage(store, q.scope)}
            for q in quotas if q.domain_id in (None, domain.id)}
