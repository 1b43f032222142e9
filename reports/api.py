"""API routes for DMARC and TLS reports: submit one, read the submission log, read a
domain's reports. Thin calls into reports.services and reports.selectors."""

import datetime as dt
from typing import Literal

from ninja import Field, File, Query, Router, Schema
from ninja.files import UploadedFile
from ninja.responses import Status

from reports import figures, selectors
from reports.models import Outcome, Source
from reports.rdns import source_names
from reports.services import report_submit
from tenants.api_common import (
    READ_ERRORS,
    WRITE_ERRORS,
    ErrorOut,
    PageOut,
    PageQuery,
    Slug,
    large_body,
    organisation_for,
    paginate,
)

router = Router(tags=["reports"])

OutcomeName = Literal["accepted", "duplicate", "rejected"]


class ResultOut(Schema):
    outcome: OutcomeName
    kind: str = Field(description="dmarc-aggregate, dmarc-failure or tls; empty if unknown.")
    domain: str
    report_id: str
    reporter: str
    reason: str = Field(description="Why it was rejected or dropped; empty when accepted.")
    submission_id: int


class SubmitOut(Schema):
    results: list[ResultOut]


class SubmitQuery(Schema):
    organisation: Slug | None = Field(None, description="Needed when you act in several.")


@router.post(
    "/reports",
    response={201: SubmitOut, 200: SubmitOut, 422: SubmitOut | ErrorOut,
              WRITE_ERRORS - {422}: ErrorOut},
    summary="Submit a DMARC or TLS report (xml, json, gzip, zip or a whole .eml)",
)
@large_body
def reports_submit(request, query: Query[SubmitQuery], file: File[UploadedFile]):
    """multipart/form-data with the report in `file`: an aggregate report (RFC 7489 or
    DMARCbis XML), a TLS report (RFC 8460 JSON), either gzipped or zipped, or a mail message
    carrying them (also a forwarded one, or an RFC 6591 failure report). 201 when a report was
    stored, 200 when every report in it was stored before, 422 when it was rejected; every
    outcome is in the submission log with its reason."""
    organisation = organisation_for(request.auth, query.organisation)
    source = Source.API if request.auth.token is not None else Source.UPLOAD
    results = report_submit(actor=request.auth, stream=file, source=source,
                            organisation=organisation)
    outcomes = {r.outcome for r in results}
    status = 201 if Outcome.ACCEPTED in outcomes else 200 if outcomes == {"duplicate"} else 422
    return Status(status, {"results": results})


class SubmissionOut(Schema):
    id: int
    received_at: dt.datetime
    source: str
    kind: str
    outcome: OutcomeName
    reason: str
    domain: str | None
    reporter: str
    report_id: str
    size: int

    @staticmethod
    def resolve_domain(obj) -> str | None:
        return obj.domain.name if obj.domain_id else None


class SubmissionQuery(PageQuery):
    organisation: Slug | None = None
    status: OutcomeName | None = Field(None, description="Only this outcome.")


class SubmissionPage(PageOut):
    items: list[SubmissionOut]


@router.get("/reports/submissions", response={200: SubmissionPage, READ_ERRORS: ErrorOut},
            summary="Every report received, newest first, with what became of it")
def reports_submissions(request, query: Query[SubmissionQuery]):
    organisation = organisation_for(request.auth, query.organisation)
    rows = selectors.submissions(request.auth, organisation=organisation, outcome=query.status)
    return paginate(rows, query)


class AggregateOut(Schema):
    reporter: str = Field(alias="org_name")
    reporter_email: str = Field(alias="org_email")
    report_id: str
    begin: dt.datetime
    end: dt.datetime
    policy: str
    pct: int | None
    messages: int
    sources: int
    received_at: dt.datetime


class AggregatePage(PageOut):
    items: list[AggregateOut]


@router.get("/domains/{name}/reports/dmarc",
            response={200: AggregatePage, READ_ERRORS: ErrorOut},
            summary="The domain's DMARC aggregate reports, newest first")
def reports_dmarc(request, name: str, query: Query[PageQuery]):
    return paginate(selectors.aggregate_reports(request.auth, name), query)


class TlsFailureOut(Schema):
    result_type: str
    sending_mta_ip: str
    receiving_mx: str
    count: int


class TlsPolicyOut(Schema):
    policy_type: str
    policy_domain: str
    successes: int
    failures: int
    failure_details: list[TlsFailureOut]


class TlsOut(Schema):
    reporter: str = Field(alias="org_name")
    contact: str
    report_id: str
    begin: dt.datetime
    end: dt.datetime
    successes: int
    failures: int
    policies: list[TlsPolicyOut]


class TlsPage(PageOut):
    items: list[TlsOut]


@router.get("/domains/{name}/reports/tls", response={200: TlsPage, READ_ERRORS: ErrorOut},
            summary="The domain's SMTP TLS reports (RFC 8460), newest first")
def reports_tls(request, name: str, query: Query[PageQuery]):
    return paginate(selectors.tls_reports(request.auth, name), query)


class FailureOut(Schema):
    received_at: dt.datetime
    expires_at: dt.datetime
    arrival: dt.datetime | None
    source_ip: str | None
    auth_failure: str
    reporter: str
    header_from_domain: str
    envelope_from_domain: str
    dkim_domain: str
    authentication_results: str
    subject: str


class FailurePage(PageOut):
    items: list[FailureOut]


@router.get("/domains/{name}/reports/failures",
            response={200: FailurePage, READ_ERRORS: ErrorOut},
            summary="DMARC failure samples (minimised: no local parts, no body; expiring)")
def reports_failures(request, name: str, query: Query[PageQuery]):
    return paginate(selectors.failure_reports(request.auth, name), query)





class DayOut(Schema):
    day: dt.date
    messages: int
    aligned: int


class SourceOut(Schema):
    ip: str
    status: Literal["aligned", "legitimate", "unauthenticated"] = Field(
        description="legitimate: failing although it looks like a real sender (fix it before "
                    "tightening); unauthenticated: nothing passes (forgers, forwarders).")
    messages: int
    aligned: int
    dkim_aligned: int
    spf_aligned: int
    quarantined: int
    rejected: int
    ours: bool = Field(description="One of this mail host's public addresses.")
    name: str = Field(description="Reverse name (PTR); empty until looked up or if none.")
    name_confirmed: bool = Field(description="The name's addresses include the IP.")


class TlsReporterOut(Schema):
    reporter: str
    successes: int
    failures: int
    failure_types: dict[str, int]


class SummaryOut(Schema):
    window_days: int
    messages: int
    aligned: int
    evidence: str = Field(description="What the reports show, as the DMARC advice says it.")
    blocked_by: list[str] = Field(description="Failing legitimate-looking senders: tightening "
                                              "DMARC is refused while there are any.")
    days: list[DayOut]
    sources: list[SourceOut]
    tls: list[TlsReporterOut]


@router.get("/domains/{name}/reports", response={200: SummaryOut, READ_ERRORS: ErrorOut},
            summary="The last 14 days of reports: alignment per day, sources, TLS results")
def reports_summary(request, name: str):
    domain = selectors.domain_for_reports(request.auth, name)
    dmarc = figures.dmarc_figures(domain)
    advice = figures.dmarc_advice(domain)
    names = source_names(s.ip for s in dmarc.sources)
    return {
        "window_days": dmarc.window_days, "messages": dmarc.messages, "aligned": dmarc.aligned,
        "evidence": advice.evidence, "blocked_by": advice.blockers, "days": dmarc.days,
        "sources": [_source_out(s, names.get(s.ip)) for s in dmarc.sources],
        "tls": figures.tls_figures(domain),
    }


def _source_out(source, name) -> dict:
    return source.__dict__ | {"status": source.status, "name": name.name if name else "",
                              "name_confirmed": bool(name and name.confirmed)}
