"""/metrics: the portal's figures in the Prometheus text format (prometheus_client).

Read from the database at each scrape by one collector, so every web process answers the
same and nothing is counted in process memory: organisations, domains, mailboxes, each mail
node's revisions and lag; what the status checks last measured on each node (queue, disks,
certificate, daemons, Postfix's queues one by one); inbound filtering outcomes; outgoing
delivery (recipients by status, suppressions); the report log, and the last 14 days of
DMARC alignment and TLS sessions per domain (reports.metrics); and each node's own Dovecot and
Postfix counters, read from the node at the scrape (status.node_metrics). Closed unless
MAILHOST_METRICS_TOKEN is set; a scraper sends it as `Authorization: Bearer <token>`
(Prometheus: `authorization: {credentials: …}`).
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
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from delivery.models import Recipient, Suppression
from delivery.selectors import sending_refusals
from identity.models import InboundFlow, NodeInboundStatus
from mailboxes.models import Domain, Mailbox
from nodes.models import MailNode
from reports.metrics import report_metrics
from routing.selectors import tls_report_counts
from status.models import StatusCheck
from status.node_metrics import node_families
from tenants.models import Organisation

INBOUND_DAYS = 7


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
        yield from report_metrics(_gauge)
        yield from _status_metrics()
        yield from _inbound_metrics()
        yield from _delivery_metrics()
        yield from node_families()
        yield _gauge("mailhost_tls_reports_sent", "Outgoing TLS reports (RFC 8460) by state "
                     "(sent, failed and awaiting the next run, sending).", ["state"],
                     [((state,), n) for state, n in sorted(tls_report_counts().items())])


def _status_metrics():
    """What the status checks measured (status/): each node's queue, disks, certificate and
    daemons, and how many checks are in each state."""
    checks = list(StatusCheck.objects.values_list("key", "group", "state", "data"))
    queue, oldest, disk, days_left, cert, up = [], [], [], [], [], []
    by_queue, deferred = [], []
    for key, group, state, data in checks:
        parts = key.split(":")
        if parts[0] != "node" or len(parts) < 3:
            continue
        node = parts[1]
        if group == "queue" and "size" in data:
            queue.append(((node,), data["size"]))
            oldest.append(((node,), data["oldest_seconds"]))
            by_queue += [((node, name), n) for name, n in data.get("queues", {}).items()]
        elif group == "queue" and parts[2:] == ["deferred"] and "deferred" in data:
            deferred.append(((node,), data["deferred"]))
        elif group == "disk" and "percent" in data:
            disk.append(((node, parts[3]), data["percent"] / 100))
            if data.get("days_left") is not None:
                days_left.append(((node, parts[3]), data["days_left"]))
        elif group == "tls" and "days_left" in data:
            cert.append(((node,), data["days_left"]))
        elif group == "daemons":
            up.append(((node, parts[3]), 1 if state == "ok" else 0))
    yield _gauge("mailhost_queue_messages", "Messages in a node's Postfix queue.", ["node"], queue)
    yield _gauge("mailhost_queue_messages_by_queue", "Messages in each of a node's Postfix "
                 "queues (maildrop, incoming, active, deferred, hold).", ["node", "queue"],
                 by_queue)
    yield _gauge("mailhost_queue_deferred_messages", "Messages Postfix defers on a node, as "
                 "postqueue lists them.", ["node"], deferred)
    yield _gauge("mailhost_queue_oldest_seconds", "Age of the oldest queued message.", ["node"],
                 oldest)
    yield _gauge("mailhost_disk_used_ratio", "Use of a node's volume (0-1).",
                 ["node", "volume"], disk)
    yield _gauge("mailhost_disk_full_in_days", "Days until a growing volume is full.",
                 ["node", "volume"], days_left)
    yield _gauge("mailhost_tls_certificate_days_left", "Days until the node's certificate "
                 "expires.", ["node"], cert)
    yield _gauge("mailhost_daemon_up", "A node's daemon is running (1) or not (0).",
                 ["node", "daemon"], up)
    yield _gauge("mailhost_status_checks", "Status checks by kind and state.", ["group", "state"],
                 [((r["group"], r["state"]), r["n"]) for r in
                  StatusCheck.objects.values("group", "state").annotate(n=Count("id")).order_by()])


def _inbound_metrics():
    """Inbound filtering (identity's mail-flow figures, collected from each node)."""
    since = timezone.now().date() - dt.timedelta(days=INBOUND_DAYS - 1)
    flow = (InboundFlow.objects.filter(day__gte=since).values("node__name", "outcome")
            .annotate(n=Sum("count")).order_by())
    yield _gauge("mailhost_inbound_messages_7d",
                 "Inbound messages of the last 7 days by what the filtering did.",
                 ["node", "outcome"], [((r["node__name"], r["outcome"]), r["n"]) for r in flow])
    yield _gauge("mailhost_inbound_breaker_open",
                 "Greylisting fails open on the node because a dependency is down (1).",
                 ["node"], [((name,), int(is_open)) for name, is_open in
                            NodeInboundStatus.objects.values_list("node__name", "breaker_open")])


def _delivery_metrics():
    """Outgoing mail the portal sent (delivery/): recipients by status and node, the
    suppression list by scope and reason, and what the nodes' sending limits refused."""
    recipients = (Recipient.objects.values("message__domain__node__name", "status")
                  .annotate(n=Count("id")).order_by())
    yield _gauge("mailhost_delivery_recipients", "Recipients of sent messages by their "
                 "delivery status (queued, deferred, delivered, bounced, expired, suppressed).",
                 ["node", "status"],
                 [((r["message__domain__node__name"], r["status"]), r["n"]) for r in recipients])
    suppressions = (Suppression.objects.values("scope", "reason").annotate(n=Count("id"))
                    .order_by())
    yield _gauge("mailhost_suppressions", "Addresses and domains on the suppression lists.",
                 ["scope", "reason"],
                 [((r["scope"], r["reason"]), r["n"]) for r in suppressions])
    refused = CounterMetricFamily(
        "mailhost_sending_refusals", "Messages a node's sending limits refused (SMTP "
        "submission and the send API), by organisation and limit (recipients, hourly, daily, "
        "login_hourly, login_daily, queued).", labels=["node", "organisation", "reason"])
    for node, organisation, reason, n in sending_refusals():
        refused.add_metric([node, organisation, reason], n)
    yield refused


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
