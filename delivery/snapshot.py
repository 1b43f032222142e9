"""What the node's outbound policy stores hold: delivery's part of the node state, read by the
reconciler through `nodes.snapshot` (registered in DeliveryConfig.ready())."""

from delivery.models import ApplicationSender, SendingQuota, Suppression
from mailboxes.models import Domain
from mailboxes.selectors import live_domain_q
from mailhost.backend.outbound import OutboundSnap


def _live_names(node) -> dict[int, list[str]]:
    """{organisation id: names of its live domains on the node}."""
    by_org: dict[int, list[str]] = {}
    for org_id, name in Domain.objects.filter(live_domain_q(), node=node).values_list(
            "organisation_id", "name"):
        by_org.setdefault(org_id, []).append(name)
    return by_org


def suppression_rows(by_org: dict[int, list[str]]) -> set[tuple]:
    """(sending domain, value, reason): a suppression binds every live domain of its
    organisation on the node."""
    return {(name, value, reason)
            for org_id, value, reason in Suppression.objects.filter(
                organisation_id__in=by_org).values_list("organisation_id", "value", "reason")
            for name in by_org[org_id]}


def quota_rows(by_org: dict[int, list[str]]) -> set[tuple]:
    """(sending domain, scope, max recipients, hourly, daily, max queued, login hourly, login
    daily) for every live domain on the node: its organisation's quota and its own."""
    rows = set()
    for quota in SendingQuota.objects.filter(organisation_id__in=by_org).select_related("domain"):
        limits = (quota.max_recipients, quota.hourly, quota.daily, quota.max_queued,
                  quota.login_hourly, quota.login_daily)
        if quota.domain_id is None:
            rows |= {(name, quota.scope, *limits) for name in by_org[quota.organisation_id]}
        elif quota.domain.name in by_org[quota.organisation_id]:
            rows.add((quota.domain.name, quota.scope, *limits))
    return rows


def sender_rows(by_org: dict[int, list[str]]) -> tuple[set[tuple], set[tuple]]:
    """Live application senders with an address in a live domain on the node: (login, password
    hash) and (address, login)."""
    names = {name for names in by_org.values() for name in names}
    senders, addresses = set(), set()
    for sender in ApplicationSender.objects.filter(revoked_at=None, organisation_id__in=by_org):
        mine = [a for a in sender.addresses if a.rpartition("@")[2] in names]
        if mine:
            senders.add((sender.login, sender.password_hash))
            addresses |= {(a, sender.login) for a in mine}
    return senders, addresses


def outbound(node) -> OutboundSnap:
    by_org = _live_names(node)
    senders, addresses = sender_rows(by_org)
    return OutboundSnap(suppressions=frozenset(suppression_rows(by_org)),
                        limits=frozenset(quota_rows(by_org)),
                        app_senders=frozenset(senders),
                        app_sender_addresses=frozenset(addresses))
