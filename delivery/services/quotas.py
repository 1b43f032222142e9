"""Sending quotas: staff set them per organisation or per domain; the node enforces them."""

from django.db import transaction

from delivery import node
from delivery.models import SendingQuota
from mailboxes.models import Domain
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
    for name, value in limits.items():
        if value is not None and not 1 <= value <= 10**7:
            raise Invalid("A limit is a whole number from 1 to 10,000,000 (or empty: none).",
                          field=name)
    with transaction.atomic():
        quota, _ = SendingQuota.objects.update_or_create(
            organisation=organisation, domain=domain, defaults=limits
        )
        audit_record(actor=actor, organisation_id=organisation.id, action="quota.set",
                     target_type="quota", target=quota.scope, after=limits)
        node.record_outbound_change(organisation)
    return quota
