"""Reading reports, always through the actor's access: a domain's reports through
`domain_get` (another tenant's domain is a 404), submissions through the organisations the
actor can see."""

from __future__ import annotations

from django.db.models import Count, QuerySet

from mailboxes.models import Domain
from mailboxes.selectors import domain_get
from reports.models import AggregateReport, FailureReport, ReportSubmission, TlsReport
from tenants.access import Actor, visible_organisations
from tenants.models import Organisation


def submissions(actor: Actor, *, organisation: Organisation | None = None,
                outcome: str | None = None) -> QuerySet[ReportSubmission]:
    """The submission log: one organisation's (or, for staff without one, every one's,
    including mail that named no hosted domain)."""
    rows = ReportSubmission.objects.select_related("domain")
    if organisation is not None:
        rows = rows.filter(organisation=organisation)
    elif not actor.is_global:
        rows = rows.filter(organisation__in=visible_organisations(actor))
    if outcome:
        rows = rows.filter(outcome=outcome)
    return rows.order_by("-received_at", "-id")


def aggregate_reports(actor: Actor, name: str, *, organisation=None) -> QuerySet[AggregateReport]:
    domain = domain_get(actor, name, organisation=organisation)
    return (AggregateReport.objects.filter(domain=domain)
            .annotate(sources=Count("records__source_ip", distinct=True))
            .order_by("-end", "-id"))


def tls_reports(actor: Actor, name: str, *, organisation=None) -> QuerySet[TlsReport]:
    domain = domain_get(actor, name, organisation=organisation)
    return TlsReport.objects.filter(domain=domain).prefetch_related("policies").order_by(
        "-end", "-id")


def failure_reports(actor: Actor, name: str, *, organisation=None) -> QuerySet[FailureReport]:
    """Failure samples of the domain's organisation, for its members and staff only. What
    is stored is already minimised (no local parts, no body) and expires."""
    domain = domain_get(actor, name, organisation=organisation)
    return FailureReport.objects.filter(domain=domain).order_by("-received_at", "-id")


def domain_for_reports(actor: Actor, name: str, *, organisation=None) -> Domain:
    return domain_get(actor, name, organisation=organisation)
