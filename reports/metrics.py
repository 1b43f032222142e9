"""/metrics: the portal's figures in the Prometheus text format (prometheus_client).

Read from the database at each scrape by one collector, so every web process answers the
same and nothing is counted in process memory: organisations, domains, mailboxes, each mail
node's revisions and lag, the report log, and the last 14 days of DMARC alignment and TLS
sessions per domain. Closed unless MAILHOST_METRICS_TOKEN is set; a scraper sends it as
`Authorization: Bearer <token>` (Prometheus: `authorization: {credentials: …}`).
"""

from __future__ import annotations

import datetime as dt
import hmac

from django.conf import settings
from django.db.models import Count, Sum
from django.http import Http404, HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from mailboxes.models import Domain, Mailbox
from nodes.models import MailNode
from reports.figures import ALIGNED, WINDOW_DAYS, sum_if
from reports.models import AggregateRecord, ReportSubmission, TlsReport
from tenants.models import Organisation


class PortalCollector:
    def collect(self):
        yield _gauge("mailhost_organisations", "Organisations.", [],
                     [((), Organisation.objects.count())])
        yield _gauge("mailhost_domains", "Domains by status.", ["status"],
                     [((r["status"],), r["n"]) for r in
                      Domain.objects.values("status").annotate(n=Count("id")).order_by()])
        yield _gauge("mailhost_mailboxes", "Mailboxes not deleted.", [],
                     [((), Mailbox.objects.filter(deleted_at=None).count())])
        nodes = list(MailNode.objects.values_list("name", "desired_revision",
                                                  "applied_revision"))
        yield _gauge("mailhost_node_revision_lag", "Changes not yet applied on a mail node.",
                     ["node"], [((name, ), want - done) for name, want, done in nodes])
        yield _gauge("mailhost_node_applied_revision", "Last revision a mail node applied.",
                     ["node"], [((name,), done) for name, _, done in nodes])
        yield from _report_metrics()


def _report_metrics():
    yield _gauge(
        "mailhost_report_submissions", "Reports received and still in the log, by outcome.",
        ["kind", "outcome", "source"],
        [((r["kind"] or "unknown", r["outcome"], r["source"]), r["n"]) for r in
         ReportSubmission.objects.values("kind", "outcome", "source")
         .annotate(n=Count("id")).order_by()])
    since = timezone.now() - dt.timedelta(days=WINDOW_DAYS)
    dmarc = (AggregateRecord.objects.filter(report__end__gte=since)
             .values("report__domain__name")
             .annotate(messages=Sum("count"), aligned=sum_if(ALIGNED)).order_by())
    yield _gauge("mailhost_dmarc_messages_14d",
                 "Messages DMARC aggregate reports counted in 14 days, aligned or not.",
                 ["domain", "aligned"],
                 [sample for r in dmarc for sample in (
                     ((r["report__domain__name"], "true"), r["aligned"]),
                     ((r["report__domain__name"], "false"), r["messages"] - r["aligned"]))])
    tls = (TlsReport.objects.filter(end__gte=since).values("domain__name")
           .annotate(ok=Sum("successes"), failed=Sum("failures")).order_by())
    yield _gauge("mailhost_tls_sessions_14d", "TLS sessions TLS-RPT reports counted in 14 days.",
                 ["domain", "result"],
                 [sample for r in tls for sample in (
                     ((r["domain__name"], "success"), r["ok"]),
                     ((r["domain__name"], "failure"), r["failed"]))])


def _gauge(name: str, documentation: str, labels: list[str], samples) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, documentation, labels=labels)
    for values, value in samples:
        family.add_metric(list(values), value or 0)
    return family


def _authorised(request: HttpRequest) -> bool:
    token = settings.MAILHOST_METRICS_TOKEN
    given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    return bool(given) and hmac.compare_digest(given.encode(), token.encode())


@never_cache
def metrics(request: HttpRequest) -> HttpResponse:
    if not settings.MAILHOST_METRICS_TOKEN:
        raise Http404("Metrics are off: set MAILHOST_METRICS_TOKEN.")
    if not _authorised(request):
        response = HttpResponse("Send the metrics token: Authorization: Bearer <token>.\n",
                                status=401, content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    registry = CollectorRegistry(auto_describe=False)
    registry.register(PortalCollector())
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
