"""Sending quotas: staff set them per organisation or per domain; the node enforces them."""

from django.db import transaction

from delivery import node
from delivery.models import SendingQuota
from mailboxes.models import Domain
from mailboxes.selectors import live_domain_q
from mailhost.backend.quotas import replace_limits, usage
from mailhost.errors import Invalid
from tenants.access import Actor, require_staff
from tenants.audit import audit_record
from tenants.models import Organisation


def quota_set(
    *, actor: Actor, organisation: Organisation, domain: Domain | None = None,
    max_recipients: int | None = None, hourly: int | None = None, daily: int | None = None,
) -> SendingQuota:
    """Set (or, with every limit empty, clear) the organisation's or one domain's quota."""
    require_staff(actor, "set sending quotas")
    if domain is not None and domain.organisation_id != organisation.id:
        raise Invalid("That domain is not this organisation's.", field="domain")
    limits = {"max_recipients": max_recipients, "hourly": hourly, "daily": daily}
    with transaction.atomic():
        quota, _ = SendingQuota.objects.update_or_create(
            organisation=organisation, domain=domain, defaults=limits
        )
        audit_record(actor=actor, organisation_id=organisation.id, action="quota.set",
                     target_type="quota", target=quota.scope, after=limits)
        transaction.on_commit(lambda: node.sync_later(organisation))
    return quota


def quota_rows(mail_node) -> list[tuple]:
    """(sending domain, scope, max recipients, hourly, daily) for every live domain on the node:
    its organisation's quota and its own."""
    rows = []
    domains = Domain.objects.filter(live_domain_q(), node=mail_node)
    by_org: dict[int, list[str]] = {}
    for org_id, name in domains.values_list("organisation_id", "name"):
        by_org.setdefault(org_id, []).append(name)
    for quota in SendingQuota.objects.filter(organisation_id__in=by_org).select_related("domain"):
        limits = (quota.max_recipients, quota.hourly, quota.daily)
        if quota.domain_id is None:
            rows += [(name, quota.scope, *limits) for name in by_org[quota.organisation_id]]
        elif quota.domain.name in by_org[quota.organisation_id]:
            rows.append((quota.domain.name, quota.scope, *limits))
    return rows


def quotas_sync(mail_node) -> None:
    replace_limits(node.quotas_store(mail_node), quota_rows(mail_node))


def quota_usage(domain: Domain) -> dict[str, dict]:
    """This hour's and today's count against the domain's and its organisation's quotas."""
    store = node.quotas_store(domain.node)
    quotas = SendingQuota.objects.filter(organisation=domain.organisation).select_related("domain")
    return {q.scope: {"limits": {"hourly": q.hourly, "daily": q.daily,
                                 "max_recipients": q.max_recipients},
                      "used": usage(store, q.scope)}
            for q in quotas if q.domain_id in (None, domain.id)}
