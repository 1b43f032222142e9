"""Reads of relays, always through the actor's organisations.

Reads of the routing app: TLS policies and the TLS failures toward recipient domains.

Both are install-wide (the nodes apply a policy to every sender, and a TLS-RPT report comes
from the sending service as a whole): staff only."""

import datetime as dt
from dataclasses import dataclass

from django.conf import settings
from django.db.models import Count, Max, Q, QuerySet, Sum
from django.utils import timezone

from mailboxes.models import Domain
from mailhost.errors import NotFound
from mailhost.names import InvalidName, normalise_domain
from routing.models import Relay, TlsFailure, TlsPolicy, TlsReport, TlsSessionCount
from tenants.access import Actor, require_read, require_staff
from tenants.models import Organisation


def relay_list(actor: Actor, organisation: Organisation) -> QuerySet[Relay]:
    require_read(actor, organisation.id)
    return (Relay.objects.filter(organisation=organisation).select_related("domain")
            .order_by("domain__name", "id"))


def relay_get(actor: Actor, organisation: Organisation, relay_id: int) -> Relay:
    relay = relay_list(actor, organisation).filter(pk=relay_id).first()
    if relay is None:
        raise NotFound("That relay was not found.")
    return relay


def spf_includes_of(domain: Domain) -> tuple[str, ...]:
    """What the domain's SPF record must include: its relay's include (its own relay, else its
    organisation's); with neither, the install-wide default relay's. One query."""
    found = dict(Relay.objects.filter(organisation_id=domain.organisation_id)
                 .filter(Q(domain=domain) | Q(domain__isnull=True))
                 .values_list("domain_id", "spf_include"))
    if found:
        include = found.get(domain.id, found.get(None, ""))
        return (include,) if include else ()
    return _default_spf_includes()


def _default_spf_includes() -> tuple[str, ...]:
    if settings.MAILHOST_RELAY_DEFAULT_HOST and settings.MAILHOST_RELAY_DEFAULT_SPF_INCLUDE:
        return (settings.MAILHOST_RELAY_DEFAULT_SPF_INCLUDE,)
    return ()


def spf_includes_by_domain(domains: list[Domain]) -> dict[int, tuple[str, ...]]:
    """spf_includes_of for many domains in one query (the organisations' relays)."""
    relays: dict[int, dict[int | None, str]] = {}
    organisations = {domain.organisation_id for domain in domains}
    for organisation_id, domain_id, include in Relay.objects.filter(
        organisation_id__in=organisations
    ).values_list("organisation_id", "domain_id", "spf_include"):
        relays.setdefault(organisation_id, {})[domain_id] = include
    default = _default_spf_includes()
    found = {}
    for domain in domains:
        own = relays.get(domain.organisation_id, {})
        if domain.pk in own or None in own:  # as spf_includes_of: its own relay, else the org's
            include = own.get(domain.pk, own.get(None, ""))
            found[domain.pk] = (include,) if include else ()
        else:
            found[domain.pk] = default
    return found


SUMMARY_DAYS = 30


def tls_policy_list(actor: Actor) -> list[TlsPolicy]:
    require_staff(actor, "see outbound TLS policies")
    return list(TlsPolicy.objects.order_by("domain"))


def tls_policy_get(actor: Actor, domain: str) -> TlsPolicy:
    require_staff(actor, "see outbound TLS policies")
    try:
        name = normalise_domain(domain)
    except InvalidName:
        raise NotFound("There is no TLS policy for that domain.") from None
    policy = TlsPolicy.objects.filter(domain=name).first()
    if policy is None:
        raise NotFound("There is no TLS policy for that domain.")
    return policy


@dataclass(frozen=True)
class DomainTls:
    domain: str
    failures: int
    last_at: dt.datetime
    results: dict[str, int]  # RFC 8460 result type → count
    policy_types: list[str]
    successes: int


def tls_failure_summary(actor: Actor, *, days: int = SUMMARY_DAYS) -> list[DomainTls]:
    """Per recipient domain with failures in the last `days`: counts by result type."""
    require_staff(actor, "see TLS failures")
    since = timezone.now() - dt.timedelta(days=days)
    recent = TlsFailure.objects.filter(at__gte=since)
    per_result = recent.values("domain", "result_type").annotate(n=Count("id"))
    heads = recent.values("domain").annotate(n=Count("id"), last=Max("at")).order_by("-last")
    types = recent.values_list("domain", "policy_type").distinct()
    successes = dict(
        TlsSessionCount.objects.filter(day__gte=since.date()).values("domain")
        .annotate(n=Sum("successes")).values_list("domain", "n"))
    results: dict[str, dict[str, int]] = {}
    for row in per_result:
        results.setdefault(row["domain"], {})[row["result_type"]] = row["n"]
    kinds: dict[str, set[str]] = {}
    for domain, kind in types:
        kinds.setdefault(domain, set()).add(kind)
    return [DomainTls(domain=h["domain"], failures=h["n"], last_at=h["last"],
                      results=dict(sorted(results.get(h["domain"], {}).items())),
                      policy_types=sorted(kinds.get(h["domain"], ())),
                      successes=successes.get(h["domain"], 0) or 0)
            for h in heads]


def tls_failure_list(actor: Actor, *, domain: str | None = None) -> list[TlsFailure]:
    """The latest failures (newest first), of one recipient domain or all; at most 500."""
    require_staff(actor, "see TLS failures")
    rows = TlsFailure.objects.all()
    if domain:
        try:
            rows = rows.filter(domain=normalise_domain(domain))
        except InvalidName:
            return []
    return list(rows.order_by("-at", "-id")[:500])


def tls_report_rows(*, domain: str, start: dt.datetime, end: dt.datetime):
    """What an RFC 8460 report for `domain` over [start, end) counts: the failures grouped by
    policy and failure, and the successes (by day, as the nodes count them)."""
    failures = TlsFailure.objects.filter(domain=domain, at__gte=start, at__lt=end)
    grouped = (failures.values("policy_type", "policy_strings", "result_type", "mx_host",
                               "mx_ip").annotate(n=Count("id")).order_by("policy_type",
                                                                         "result_type"))
    successes = TlsSessionCount.objects.filter(
        domain=domain, day__gte=start.date(), day__lt=end.date(),
    ).aggregate(n=Sum("successes"))["n"] or 0
    return list(grouped), successes


def tls_report_list(actor: Actor, *, limit: int = 100) -> list[TlsReport]:
    """The latest outgoing TLS reports (sent, failed or being sent), newest day first."""
    require_staff(actor, "see TLS reports")
    return list(TlsReport.objects.order_by("-day", "domain", "rua")[:limit])


def tls_report_counts() -> dict[str, int]:
    """{state: outgoing TLS reports} (for /metrics: the system's read, no actor)."""
    return dict(TlsReport.objects.values("state").annotate(n=Count("id"))
                .values_list("state", "n").order_by())
