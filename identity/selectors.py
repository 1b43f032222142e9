"""Reads for DNS posture: the record set with its latest verdicts, keys, history, public files.

Org-scoped like every selector: another tenant's domain is NotFound. The two public reads (the
MTA-STS policy and the BIMI logo) take no actor: senders and mail clients fetch them anonymously.
"""

import datetime as dt
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from urllib.parse import urlparse

from django.conf import settings
from django.db.models import Count, QuerySet
from django.urls import reverse
from django.utils import timezone

from identity import dmarc, mtasts
from identity.dmarc_evidence import DmarcEvidence, dmarc_evidence
from identity.models import (
    DNS_STATES,
    CheckStatus,
    DkimKey,
    DkimKeyState,
    DnsCheck,
    DnsCheckHistory,
    DomainPosture,
)
from identity.records import (
    DkimKeySnap,
    PostureSnap,
    Record,
    bimi_published,
    expected_records,
    mtasts_policy,
    ownership_record,
    zone_fragment,
)
from identity.spf_includes import spf_includes, spf_includes_many
from mailboxes.models import Domain, VerificationMethod
from mailboxes.selectors import domain_get, hosted_domain, live_domain_q
from mailhost.endpoints import client_endpoints
from mailhost.names import InvalidName, normalise_domain
from tenants.access import Actor

REMOVAL_LISTED_DAYS = 30  # retired keys are shown as "to remove" for this long


def _mailto(address: str) -> str:
    return address if ":" in address else f"mailto:{address}"


def posture_defaults(domain_name: str) -> dict:
    """A new domain's posture: report addresses from settings ({domain} filled in)."""
    return {
        "dmarc_rua": [_mailto(a.format(domain=domain_name)) for a in settings.MAILHOST_DMARC_RUA],
        "tlsrpt_rua": [_mailto(a.format(domain=domain_name)) for a in settings.MAILHOST_TLSRPT_RUA],
        "mtasts_mode": settings.MAILHOST_MTASTS_MODE,
        "mtasts_max_age": settings.MAILHOST_MTASTS_MAX_AGE,
    }


def posture_of(domain: Domain) -> DomainPosture:
    """The stored posture, or (unsaved) the defaults a domain without one has."""
    posture = DomainPosture.objects.filter(domain=domain).first()
    if posture is None:
        posture = DomainPosture(domain=domain, **posture_defaults(domain.name))
    return posture


def mail_host() -> str:
    return settings.MAILHOST_HOSTNAME.lower().rstrip(".")


def portal_host() -> str:
    return urlparse(settings.MAILHOST_PORTAL_URL).hostname or settings.MAILHOST_HOSTNAME


def bimi_logo_url(domain_name: str) -> str:
    path = reverse("identity:bimi-logo", kwargs={"name": domain_name})
    return settings.MAILHOST_PORTAL_URL.rstrip("/") + path


def dns_keys(domain: Domain) -> QuerySet[DkimKey]:
    """Keys whose public half belongs in DNS now: pending, published, active, retiring."""
    return domain.dkim_keys.filter(state__in=DNS_STATES).order_by("selector")


def ownership_token(domain: Domain) -> str | None:
    """The token the domain's records should carry: while it waits for verification, and once
    verified by it (the record stays listed, to keep); none when ownership needed no record."""
    if not domain.is_verified or domain.verification_method == VerificationMethod.DNS:
        return domain.verification_token
    return None


def verification_record(domain: Domain) -> Record | None:
    token = ownership_token(domain)
    return None if token is None else ownership_record(domain.name, token)


def posture_snapshot(
    domain: Domain, posture: DomainPosture | None = None, keys: list[DkimKey] | None = None,
    includes: tuple[str, ...] | None = None,
) -> PostureSnap:
    """`posture`, `keys` (its dns_keys, in selector order) and `includes` (its SPF includes)
    when the caller read them for many domains at once; else read here."""
    posture = posture or posture_of(domain)
    keys = tuple(
        DkimKeySnap(k.selector, k.algorithm, k.public_key, k.state)
        for k in (dns_keys(domain) if keys is None else keys)
    )
    return PostureSnap(
        domain=domain.name,
        mail_host=mail_host(),
        portal_host=portal_host(),
        ipv4=tuple(settings.MAILHOST_PUBLIC_IPV4),
        ipv6=tuple(settings.MAILHOST_PUBLIC_IPV6),
        dkim_keys=keys,
        dmarc=posture_dmarc(posture),
        mtasts_mode=posture.mtasts_mode,
        mtasts_mx=tuple(posture.mtasts_mx),
        mtasts_max_age=posture.mtasts_max_age,
        tlsrpt_rua=tuple(posture.tlsrpt_rua),
        bimi_url=bimi_logo_url(domain.name) if posture.bimi_sha256 else None,
        clients=client_endpoints(),
        verification_token=ownership_token(domain),
        spf_includes=spf_includes(domain) if includes is None else includes,
    )


def posture_dmarc(posture: DomainPosture) -> dmarc.Dmarc:
    return dmarc.Dmarc(
        policy=posture.dmarc_policy,
        pct=posture.dmarc_pct,
        rua=tuple(posture.dmarc_rua),
        ruf=tuple(posture.dmarc_ruf),
        adkim=posture.dmarc_adkim,
        aspf=posture.dmarc_aspf,
    )


# Install-wide records that every domain's record set lists with the operator's own (the ARC
# key, routing/): filled by the apps above identity in their ready(), called per listing.
INSTALL_RECORDS: list[Callable[[], list[Record]]] = []


def domain_records(domain: Domain) -> list[Record]:
    extra = [record for provider in INSTALL_RECORDS for record in provider()]
    return expected_records(posture_snapshot(domain)) + extra


def domains_records(domains: QuerySet[Domain]) -> Iterator[tuple[Domain, list[Record]]]:
    """domain_records for many domains in a few queries, not three per domain (a node's hosted
    zone lists every live domain: 30,000 queries at 10,000 domains)."""
    for domain, snap in domains_postures(domains):
        yield domain, expected_records(snap)


def domains_postures(domains: QuerySet[Domain]) -> Iterator[tuple[Domain, PostureSnap]]:
    """posture_snapshot for many domains: postures, keys, and SPF includes per 2,000 domains,
    each read in one query."""
    postures = {
        p.domain_id: p for p in DomainPosture.objects.filter(domain__in=domains.values("pk"))
    }
    keys: dict[int, list[DkimKey]] = defaultdict(list)
    dns = DkimKey.objects.filter(domain__in=domains.values("pk"), state__in=DNS_STATES)
    for key in dns.only("domain_id", "selector", "algorithm", "public_key", "state").order_by(
        "domain_id", "selector"
    ):
        keys[key.domain_id].append(key)
    batch: list[Domain] = []
    for domain in domains.iterator(chunk_size=2000):
        batch.append(domain)
        if len(batch) == 2000:
            yield from _postures_of(batch, postures, keys)
            batch = []
    yield from _postures_of(batch, postures, keys)


def _postures_of(
    batch: list[Domain], postures: dict[int, DomainPosture], keys: dict[int, list[DkimKey]]
) -> Iterator[tuple[Domain, PostureSnap]]:
    includes = spf_includes_many(batch) if batch else {}
    for domain in batch:
        posture = postures.get(domain.pk) or DomainPosture(
            domain=domain, **posture_defaults(domain.name)
        )
        yield domain, posture_snapshot(domain, posture, keys[domain.pk], includes[domain.pk])


def domain_zone(actor: Actor, name: str, *, organisation=None) -> str:
    domain = domain_get(actor, name, organisation=organisation)
    return zone_fragment(domain_records(domain), domain=domain.name, ttl=settings.MAILHOST_DNS_TTL)


@dataclass(frozen=True)
class StaleRecord:
    name: str
    type: str
    reason: str


def records_to_remove(
    domain: Domain, snap: PostureSnap, *, listing: bool = False
) -> list[StaleRecord]:
    """Records that may still be published and should not be: retired DKIM keys, and BIMI
    while DMARC does not enforce. For `listing` (people), only what was plausibly published:
    keys retired recently, and a BIMI record that was once expected."""
    retired = domain.dkim_keys.filter(state=DkimKeyState.RETIRED)
    if listing:
        since = timezone.now() - dt.timedelta(days=REMOVAL_LISTED_DAYS)
        retired = retired.filter(retired_at__gte=since)
    stale = [
        StaleRecord(f"{selector}._domainkey.{domain.name}", "TXT", "retired DKIM key")
        for selector in retired.order_by("selector").values_list("selector", flat=True)
    ]
    if not bimi_published(snap) and (
        not listing or DnsCheckHistory.objects.filter(domain=domain, key="bimi").exists()
    ):
        stale.append(StaleRecord(f"default._bimi.{domain.name}", "TXT",
                                 "BIMI needs a logo and DMARC enforcing at pct=100"))
    return stale


@dataclass(frozen=True)
class RecordView:
    key: str
    name: str
    type: str
    value: str
    purpose: str
    status: str | None  # ok / wrong / unknown; None until first checked
    detail: str
    found: list
    checked_at: object


@dataclass(frozen=True)
class DnsOverview:
    domain: Domain
    posture: DomainPosture
    records: list[RecordView]
    keys: list[DkimKey]
    dmarc_next: tuple[str, int] | None
    dmarc_blockers: list[str]
    dmarc_evidence: str  # what the domain's DMARC reports show (identity.dmarc_evidence)
    mtasts_id: str
    bimi_published: bool
    remove: list[StaleRecord]


def dns_overview(actor: Actor, name: str, *, organisation=None) -> DnsOverview:
    domain = domain_get(actor, name, organisation=organisation)
    posture = posture_of(domain)
    snap = posture_snapshot(domain, posture)
    checks = {c.key: c for c in DnsCheck.objects.filter(domain=domain)}
    records = [_record_view(record, checks.get(record.key)) for record in expected_records(snap)]
    advice = dmarc_evidence(domain)
    return DnsOverview(
        domain=domain,
        posture=posture,
        records=records,
        keys=list(domain.dkim_keys.order_by("-created_at", "-id")),
        dmarc_next=dmarc.next_step(posture.dmarc_policy, posture.dmarc_pct),
        dmarc_blockers=dmarc_blockers(domain, checks, advice=advice),
        dmarc_evidence=advice.evidence,
        mtasts_id=mtasts.policy_id(mtasts_policy(snap)),
        bimi_published=bimi_published(snap),
        remove=records_to_remove(domain, snap, listing=True),
    )


def _record_view(record: Record, check: DnsCheck | None) -> RecordView:
    return RecordView(
        key=record.key,
        name=record.name,
        type=record.type,
        value=record.value,
        purpose=record.purpose,
        status=check.status if check else None,
        detail=check.detail if check else "Not checked yet.",
        found=check.found if check else [],
        checked_at=check.checked_at if check else None,
    )


def dmarc_blockers(domain: Domain, checks: dict[str, DnsCheck] | None = None, *,
                   advice: DmarcEvidence | None = None) -> list[str]:
    """Why DMARC may not be tightened now: SPF or a signing key not verified in DNS, or a
    legitimate-looking sender failing alignment in the domain's DMARC reports."""
    if checks is None:
        checks = {c.key: c for c in DnsCheck.objects.filter(domain=domain)}
    signing = domain.dkim_keys.filter(state=DkimKeyState.ACTIVE).order_by("selector")
    wanted = [("spf", "SPF")] + [(f"dkim:{k.selector}", f"DKIM {k.selector}") for k in signing]
    blockers = []
    for key, label in wanted:
        check = checks.get(key)
        if check is None:
            blockers.append(f"{label} has not been checked yet.")
        elif check.status != CheckStatus.OK:
            blockers.append(f"{label} is {check.status}: {check.detail}")
    return blockers + (advice or dmarc_evidence(domain)).blockers


def dkim_signing_keys(domain: Domain) -> QuerySet[DkimKey]:
    """What OpenDKIM signs with: the active RSA key first, then an active Ed25519 one if any."""
    return domain.dkim_keys.filter(state=DkimKeyState.ACTIVE).order_by("-algorithm")


def check_history(
    actor: Actor, name: str, *, key: str | None = None, organisation=None
) -> QuerySet[DnsCheckHistory]:
    domain = domain_get(actor, name, organisation=organisation)
    history = DnsCheckHistory.objects.filter(domain=domain)
    if key:
        history = history.filter(key=key)
    return history.order_by("-checked_at", "-id")


def _public_posture(name: str) -> DomainPosture | None:
    try:
        ascii_name = normalise_domain(name)
    except InvalidName:
        return None
    return (
        DomainPosture.objects.filter(live_domain_q("domain__"), domain__name=ascii_name)
        .select_related("domain")
        .first()
    )


def bimi_logo_public(name: str) -> tuple[bytes, str] | None:
    """The stored logo and its SHA-256, for anyone (mail clients fetch it anonymously)."""
    posture = _public_posture(name)
    if posture is None or not posture.bimi_sha256:
        return None
    return bytes(posture.bimi_svg), posture.bimi_sha256


def mtasts_policy_public(name: str) -> str | None:
    """The policy text of a hosted, active domain (defaults if it has no posture row yet)."""
    try:
        ascii_name = normalise_domain(name)
    except InvalidName:
        return None
    domain = hosted_domain(ascii_name)
    if domain is None:
        return None
    posture = posture_of(domain)
    return mtasts.policy_text(
        mode=posture.mtasts_mode,
        mx=posture.mtasts_mx or [mail_host()],
        max_age=posture.mtasts_max_age,
    )


def posture_summary(domain_ids) -> dict[int, dict[str, int]]:
    """{domain id: {"ok": n, "wrong": n, "unknown": n}} for a page of domains, in one query."""
    summary: dict[int, dict[str, int]] = {}
    rows = (
        DnsCheck.objects.filter(domain_id__in=list(domain_ids))
        .values("domain_id", "status")
        .annotate(n=Count("pk"))
        .order_by()
    )
    for row in rows:
        summary.setdefault(row["domain_id"], {})[row["status"]] = row["n"]
    return summary
