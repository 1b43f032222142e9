"""The reports' figures for /metrics (status.metrics): the report log, and the last 14 days of
DMARC alignment and TLS sessions per domain."""

from __future__ import annotations

import datetime as dt

from django.db.models import Count, Sum
from django.utils import timezone

from reports.figures import ALIGNED, WINDOW_DAYS, sum_if
from reports.models import AggregateRecord, ReportSubmission, TlsReport


def report_metrics(gauge):
    yield gauge(
        "mailhost_report_submissions", "Reports received and still in the log, by outcome.",
        ["kind", "outcome", "source"],
        [((r["kind"] or "unknown", r["outcome"], r["source"]), r["n"]) for r in
         ReportSubmission.objects.values("kind", "outcome", "source")
         .annotate(n=Count("id")).order_by()])
    since = timezone.now() - dt.timedelta(days=WINDOW_DAYS)
    dmarc = (AggregateRecord.objects.filter(report__end__gte=since)
             .values("report__domain__name")
             .annotate(messages=Sum("count"), aligned=sum_if(ALIGNED)).order_by())
    yield gauge("mailhost_dmarc_messages_14d",
                 "Messages DMARC aggregate reports counted in 14 days, aligned or not.",
                 ["domain", "aligned"],
                 [sample for r in dmarc for sample in (
                     ((r["report__domain__name"], "true"), r["aligned"]),
                     ((r["report__domain__name"], "false"), r["messages"] - r["aligned"]))])
    tls = (TlsReport.objects.filter(end__gte=since).values("domain__name")
           .annotate(ok=Sum("successes"), failed=Sum("failures")).order_by())
    yield gauge("mailhost_tls_sessions_14d", "TLS sessions TLS-RPT reports counted in 14 days.",
                 ["domain", "result"],
                 [sample for r in tls for sample in (
                     ((r["domain__name"], "success"), r["ok"]),
                     ((r["domain__name"], "failure"), r["failed"]))])
