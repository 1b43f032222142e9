"""Organisation suspension (staff): its domains stop being hosted until it is lifted."""

import datetime as dt

from django.db import transaction
from django.utils import timezone

from mailboxes.models import (
    Domain,
)
from mailboxes.services.common import _changed
from nodes.models import NodeChange
from tenants.access import Actor, require_staff
from tenants.audit import audit_record
from tenants.models import Organisation

# --- organisation suspension ------------------------------------------------------------------


@transaction.atomic
def organisation_set_suspended(
    *, actor: Actor, organisation: Organisation, suspended: bool
) -> Organisation:
    """Suspend a client organisation, or lift its suspension (staff only; audited).

    Suspended, its domains count as not hosted (mailboxes.selectors.live_domain_q): on the
    node they stop receiving and its mailboxes stop logging in, through the same reconcile as
    any change; its tokens are refused and its members can only look. Nothing is deleted, so
    lifting it brings everything back as it was. Doing what is already done changes nothing.
    """
    require_staff(actor, "suspend organisations")
    organisation = Organisation.objects.select_for_update().get(pk=organisation.pk)
    if organisation.suspended == suspended:
        return organisation
    before = {"suspended_at": _iso(organisation.suspended_at)}
    organisation.suspended_at = timezone.now() if suspended else None
    organisation.save(update_fields=["suspended_at"])
    for domain in Domain.objects.filter(organisation=organisation).order_by("pk"):
        _changed(domain, NodeChange.Kind.DOMAIN)  # its addresses and DKIM key follow it
    audit_record(
        actor=actor,
        organisation_id=organisation.pk,
        action="organisation.suspend" if suspended else "organisation.unsuspend",
        target_type="organisation",
        target=organisation.slug,
        before=before,
        after={"suspended_at": _iso(organisation.suspended_at)},
    )
    return organisation


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value else None
