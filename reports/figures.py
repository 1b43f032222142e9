"""What the reports say about a domain, for operators and for the DMARC advice: alignment per
day, the sending sources with the failing ones told apart, TLS results by reporter.

Reads only (selectors of a kind); the caller has already checked access to the domain.
A source is classified from the reports alone:

- aligned: every message passed DMARC (DKIM or SPF aligned with the From: domain);
- legitimate-looking and failing: some of its messages fail alignment although it is one of
  this install's sending addresses, or some of its mail did align, or it authenticates (a
  DKIM signature or SPF passes for some domain): a real service sending as the domain that
  needs its SPF or DKIM fixed. Tightening DMARC now would lose its mail;
- unauthenticated: nothing of it aligns or authenticates: a forger, or a forwarder, which
  is what an enforcing policy is for.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections import defaultdict
from dataclasses import dataclass

from django.conf import settings
from django.db.models import Case, IntegerField, Q, Sum, When
from django.db.models.functions import TruncDate
from django.utils import timezone

from identity.dmarc_evidence import DmarcEvidence
from mailboxes.models import Domain
from reports.models import AggregateRecord, FailureReport, TlsPolicyResult

WINDOW_DAYS = 14


def sum_if(condition: Q):
    return Sum(Case(When(condition, then="count"), default=0, output_field=IntegerField()))


ALIGNED = Q(dkim_aligned=True) | Q(spf_aligned=True)


@dataclass(frozen=True)
class Day:
    day: dt.date
    messages: int
    aligned: int


@dataclass(frozen=True)
class Source:
    ip: str
    messages: int
    aligned: int
    dkim_aligned: int
    spf_aligned: int
    authenticated: int
    quarantined: int
    rejected: int
    ours: bool

    @property
    def failing(self) -> int:
        return self.messages - self.aligned

    @property
    def status(self) -> str:
        """aligned / legitimate (failing but looks like a real sender) / unauthenticated."""
        if not self.failing:
            return "aligned"
        if self.ours or self.aligned or self.authenticated:
            return "legitimate"
        return "unauthenticated"

    @property
    def rate(self) -> float:
        return 100 * self.aligned / self.messages if self.messages else 0.0


@dataclass(frozen=True)
class DmarcFigures:
    days: list[Day]
    sources: list[Source]  # failing legitimate first, then by messages
    messages: int
    aligned: int
    window_days: int

    @property
    def rate(self) -> float:
        return 100 * self.aligned / self.messages if self.messages else 0.0

    def with_status(self, status: str) -> list[Source]:
        return [s for s in self.sources if s.status == status]


def _our_addresses() -> set[str]:
    return {str(ipaddress.ip_address(a)) for a in
            (*settings.MAILHOST_PUBLIC_IPV4, *settings.MAILHOST_PUBLIC_IPV6)}


def dmarc_figures(domain: Domain, *, days: int = WINDOW_DAYS, now=None) -> DmarcFigures:
    since = (now or timezone.now()) - dt.timedelta(days=days)
    rows = AggregateRecord.objects.filter(report__domain=domain, report__end__gte=since)
    # One query, grouped by source and day; both views are summed from it here.
    groups = rows.annotate(day=TruncDate("report__end")).values("source_ip", "day").annotate(
        messages=Sum("count"), aligned=sum_if(ALIGNED),
        dkim=sum_if(Q(dkim_aligned=True)), spf=sum_if(Q(spf_aligned=True)),
        authenticated=sum_if(Q(authenticated=True)),
        quarantined=sum_if(Q(disposition="quarantine")),
        rejected=sum_if(Q(disposition="reject")),
    ).order_by()
    fields = ("messages", "aligned", "dkim", "spf", "authenticated", "quarantined", "rejected")
    per_source: dict[str, dict] = defaultdict(lambda: dict.fromkeys(fields, 0))
    per_day: dict[dt.date, list[int]] = defaultdict(lambda: [0, 0])
    for group in groups:
        for name in fields:
            per_source[group["source_ip"]][name] += group[name]
        per_day[group["day"]][0] += group["messages"]
        per_day[group["day"]][1] += group["aligned"]
    ours = _our_addresses()
    sources = [
        Source(ip=ip, messages=r["messages"], aligned=r["aligned"], dkim_aligned=r["dkim"],
               spf_aligned=r["spf"], authenticated=r["authenticated"],
               quarantined=r["quarantined"], rejected=r["rejected"], ours=ip in ours)
        for ip, r in per_source.items()
    ]
    order = {"legitimate": 0, "unauthenticated": 1, "aligned": 2}
    sources.sort(key=lambda s: (order[s.status], -s.messages, s.ip))
    day_rows = [Day(day, messages, aligned)
                for day, (messages, aligned) in sorted(per_day.items())]
    return DmarcFigures(days=day_rows, sources=sources,
                        messages=sum(s.messages for s in sources),
                        aligned=sum(s.aligned for s in sources), window_days=days)


def _count(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def dmarc_advice(domain: Domain, *, now=None) -> DmarcEvidence:
    figures = dmarc_figures(domain, now=now)
    if not figures.messages:
        return DmarcEvidence(
            evidence=f"No DMARC reports about this domain in the last {figures.window_days} "
                     "days yet: move on once reports show every sender aligned.",
            blockers=[])
    legitimate = figures.with_status("legitimate")
    unauthenticated = figures.with_status("unauthenticated")
    known = len(figures.sources) - len(unauthenticated)
    evidence = (f"{figures.rate:.1f} % of {_count(figures.messages, 'message')} aligned over "
                f"{figures.window_days} days from {_count(known, 'known source')}")
    if unauthenticated:
        first = unauthenticated[0]
        evidence += (f"; {_count(len(unauthenticated), 'unauthenticated source')} "
                     f"({first.ip}{', …' if len(unauthenticated) > 1 else ''}, "
                     f"{_count(sum(s.messages for s in unauthenticated), 'message')}) "
                     f"{'fails' if len(unauthenticated) == 1 else 'fail'}: forgers or "
                     "forwarders, which an enforcing policy stops")
    blockers = [
        f"{s.ip} sent {_count(s.failing, 'message')} as {domain.name} that failed DMARC "
        f"although it {_why_legitimate(s)}: give it an SPF entry or DKIM signing for "
        f"{domain.name} before tightening."
        for s in legitimate
    ]
    return DmarcEvidence(evidence=evidence + ".", blockers=blockers)


def _why_legitimate(source: Source) -> str:
    if source.ours:
        return "is this mail host"
    if source.aligned:
        return f"also sent {_count(source.aligned, 'aligned message')}"
    return "authenticates (DKIM or SPF passes for another domain)"


@dataclass(frozen=True)
class TlsReporter:
    reporter: str
    successes: int
    failures: int
    failure_types: dict[str, int]


def tls_figures(domain: Domain, *, days: int = WINDOW_DAYS, now=None) -> list[TlsReporter]:
    since = (now or timezone.now()) - dt.timedelta(days=days)
    results = TlsPolicyResult.objects.filter(report__domain=domain, report__end__gte=since)
    totals: dict[str, list] = defaultdict(lambda: [0, 0, defaultdict(int)])
    for org, ok, failed, details in results.values_list(
        "report__org_name", "successes", "failures", "failure_details"
    ):
        entry = totals[org]
        entry[0] += ok
        entry[1] += failed
        for detail in details:
            entry[2][detail.get("result_type", "?")] += int(detail.get("count", 0))
    return [TlsReporter(org, ok, failed, dict(sorted(types.items(), key=lambda t: -t[1])))
            for org, (ok, failed, types) in sorted(totals.items())]


def failure_samples(domain: Domain, *, limit: int = 20):
    return FailureReport.objects.filter(domain=domain).order_by("-received_at", "-id")[:limit]
