"""Taking reports in: one door for uploads, the API and the mail intake.

`report_submit` reads a submission with a byte cap, takes it apart (reports.parsing), finds
the domain each report is about, and stores each report once. Every outcome (accepted,
duplicate, rejected with its reason) is a `ReportSubmission` row; a rejected or duplicate
report leaves nothing else behind: an aggregate report's rows are written inside the
transaction that creates it, so a report found broken half-way through is rolled back whole.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from dataclasses import asdict, dataclass
from itertools import islice

from celery import current_app
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from mailboxes.models import Domain
from mailboxes.selectors import hosted_domain
from reports import parsing
from reports.models import (
    AggregateRecord,
    AggregateReport,
    FailureReport,
    Kind,
    Outcome,
    ReportSubmission,
    Source,
    TlsPolicyResult,
    TlsReport,
)
from tenants.access import Actor, require_write
from tenants.audit import audit_record
from tenants.models import Organisation

BATCH = 500
RESOLVE_AT_MOST = 200  # sources of one report whose reverse names are looked up
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Result:
    """What became of one report of a submission (or of the whole, when it was refused)."""

    outcome: str
    kind: str
    domain: str
    report_id: str
    reporter: str
    reason: str
    submission_id: int


def limits() -> parsing.Limits:
    return parsing.Limits(
        max_bytes=settings.MAILHOST_REPORT_MAX_BYTES,
        max_uncompressed=settings.MAILHOST_REPORT_MAX_UNCOMPRESSED_BYTES,
        max_records=settings.MAILHOST_REPORT_MAX_RECORDS,
        max_parts=settings.MAILHOST_REPORT_MAX_PARTS,
    )


def report_submit(
    *, actor: Actor, stream, source: str, organisation: Organisation | None = None
) -> list[Result]:
    """Ingest a submission read from `stream` (a binary file object).

    With `organisation` (uploads, API) a report counts only for that organisation's own
    domains and the actor must be allowed to write there; without (the mail intake) it counts
    for whichever hosted domain it names. A report for any other domain is rejected, with the
    same words whether or not someone else hosts it."""
    if organisation is not None:
        require_write(actor, organisation.pk, "That organisation")
    cap = limits()
    data = parsing.read_submission(stream, cap)
    digest = hashlib.sha256(data).hexdigest()
    context = _Context(actor, source, organisation, len(data), digest)
    try:
        found = parsing.reports_in(data, cap)
    except parsing.Rejected as exc:
        return [context.reject(str(exc))]
    return [_store(context, report) for report in found]


@dataclass
class _Context:
    actor: Actor
    source: str
    organisation: Organisation | None
    size: int
    sha256: str

    def record(self, *, outcome: str, reason: str = "", kind: str = "", domain=None,
               report_id: str = "", reporter: str = "") -> Result:
        organisation_id = domain.organisation_id if domain else getattr(self.organisation, "pk",
                                                                        None)
        row = ReportSubmission.objects.create(
            organisation_id=organisation_id, domain=domain, source=self.source, kind=kind,
            outcome=outcome, reason=reason[:500], reporter=reporter[:255],
            report_id=report_id[:255], size=min(self.size, 2**31 - 1), sha256=self.sha256,
            received_at=timezone.now(),
        )
        if organisation_id is not None and self.source != Source.MAIL:
            audit_record(actor=self.actor, organisation_id=organisation_id,
                         action=f"report.{outcome}", target_type="report",
                         target=f"{kind or 'submission'} {report_id}".strip(),
                         after={"reason": reason[:200]} if reason else None)
        return Result(outcome=outcome, kind=kind, domain=domain.name if domain else "",
                      report_id=report_id, reporter=reporter, reason=reason,
                      submission_id=row.pk)

    def reject(self, reason: str, **fields) -> Result:
        return self.record(outcome=Outcome.REJECTED, reason=reason, **fields)


def _domain_for(context: _Context, name: str) -> Domain | None:
    if context.organisation is not None:
        return Domain.objects.filter(organisation=context.organisation, name=name).first()
    return hosted_domain(name)


def _store(context: _Context, report: parsing.Report) -> Result:
    about = report.meta if isinstance(report, parsing.AggregateReport) else report
    report_id = getattr(about, "report_id", "") or context.sha256[:16]
    reporter = getattr(about, "org_name", "") or getattr(about, "reporter", "")
    fields = {"kind": report.kind, "report_id": report_id, "reporter": reporter}
    domain = _domain_for(context, about.domain)
    if domain is None:
        where = "of this organisation" if context.organisation is not None else "hosted here"
        return context.reject(f"The report is about {about.domain}, which is not a domain "
                              f"{where}.", **fields)
    store = {Kind.AGGREGATE: _store_aggregate, Kind.TLS: _store_tls,
             Kind.FAILURE: _store_failure}[report.kind]
    try:
        with transaction.atomic():
            stored = store(domain, report, context)
    except parsing.Rejected as exc:
        return context.reject(str(exc), domain=domain, **fields)
    except IntegrityError:
        stored = False  # the same report arriving at the same moment: the other copy won
    if not stored:
        return context.record(outcome=Outcome.DUPLICATE, domain=domain, **fields,
                              reason="This report was stored before; this copy was dropped.")
    return context.record(outcome=Outcome.ACCEPTED, domain=domain, **fields)


def _store_aggregate(domain: Domain, report: parsing.AggregateReport, context) -> bool:
    meta = report.meta
    if AggregateReport.objects.filter(domain=domain, org_name=meta.org_name,
                                      report_id=meta.report_id).exists():
        return False
    row = AggregateReport.objects.create(
        domain=domain, org_name=meta.org_name, org_email=meta.org_email,
        report_id=meta.report_id, begin=meta.begin, end=meta.end, policy=meta.policy,
        subdomain_policy=meta.subdomain_policy, pct=meta.pct, adkim=meta.adkim,
        aspf=meta.aspf, version=meta.version, received_at=timezone.now(),
    )
    total, ips = 0, set()
    while batch := list(islice(report.records, BATCH)):
        AggregateRecord.objects.bulk_create(_record_row(row, r) for r in batch)
        total += sum(r.count for r in batch)
        if len(ips) < RESOLVE_AT_MOST:
            ips.update(r.source_ip for r in batch)
    row.messages = total
    row.save(update_fields=["messages"])
    transaction.on_commit(lambda: _resolve_later(sorted(ips)[:RESOLVE_AT_MOST]))
    return True


def _resolve_later(ips: list[str]) -> None:
    # By name: reports.tasks imports the intake, which imports this module.
    try:
        current_app.send_task("reports.resolve_sources", args=[ips])
    except Exception:  # the broker down: names are a nicety, the report is stored
        logger.warning("reports: could not queue the reverse lookups", exc_info=True)


def _record_row(report: AggregateReport, record: parsing.AggregateRecord) -> AggregateRecord:
    return AggregateRecord(
        report=report, source_ip=record.source_ip, count=record.count,
        disposition=record.disposition, dkim_aligned=record.dkim_aligned,
        spf_aligned=record.spf_aligned, header_from=record.header_from,
        authenticated=any(a.result == "pass" for a in (*record.dkim, *record.spf)),
        envelope_from=record.envelope_from,
        dkim=[{"domain": a.domain, "selector": a.selector, "result": a.result}
              for a in record.dkim],
        spf=[{"domain": a.domain, "scope": a.scope, "result": a.result} for a in record.spf],
        reasons=list(record.reasons),
    )


def _store_tls(domain: Domain, report: parsing.TlsReport, context) -> bool:
    if TlsReport.objects.filter(domain=domain, org_name=report.org_name,
                                report_id=report.report_id).exists():
        return False
    row = TlsReport.objects.create(
        domain=domain, org_name=report.org_name, contact=report.contact,
        report_id=report.report_id, begin=report.begin, end=report.end,
        successes=sum(p.successes for p in report.policies),
        failures=sum(p.failures for p in report.policies), received_at=timezone.now(),
    )
    TlsPolicyResult.objects.bulk_create(
        TlsPolicyResult(
            report=row, policy_type=p.policy_type, policy_domain=p.policy_domain,
            mx_host=p.mx_host, successes=p.successes, failures=p.failures,
            failure_details=[asdict(f) for f in p.failure_details],
        )
        for p in report.policies
    )
    return True


def _store_failure(domain: Domain, report: parsing.FailureReport, context) -> bool:
    if FailureReport.objects.filter(domain=domain, sha256=context.sha256).exists():
        return False
    now = timezone.now()
    FailureReport.objects.create(
        domain=domain, sha256=context.sha256, feedback_type=report.feedback_type,
        auth_failure=report.auth_failure, source_ip=report.source_ip or None,
        arrival=report.arrival, reporter=report.reporter,
        header_from_domain=report.header_from_domain,
        envelope_from_domain=report.envelope_from_domain, dkim_domain=report.dkim_domain,
        authentication_results=report.authentication_results, subject=report.subject,
        received_at=now,
        expires_at=now + dt.timedelta(days=settings.MAILHOST_REPORT_FAILURE_RETENTION_DAYS),
    )
    return True
