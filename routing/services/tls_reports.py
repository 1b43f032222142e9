"""Outgoing SMTP TLS reports (RFC 8460): once a day, for every recipient domain our nodes
tried to deliver to the day before (UTC), the report built by routing.tlsrpt goes to each
`rua` the domain publishes at `_smtp._tls.<domain>`: by mail (§5.3: multipart/report with the
gzip JSON, signed by the node's OpenDKIM like all our mail) or by HTTPS POST
(`application/tlsrpt+gzip`). A domain that publishes nothing gets nothing.

Each (domain, day, rua) is a TlsReport row: claimed before it is sent, so a rerun (or a second
worker) never sends it twice; a failure keeps its reason and the next runs retry it for
RETRY_DAYS; so is a record that could not be read (a row without a rua). Off unless
MAILHOST_TLSRPT_FROM names the sending address.
"""

from __future__ import annotations

import datetime as dt
import gzip
import http.client
import json
import logging
import ssl
import uuid
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, make_msgid
from urllib.parse import unquote, urlsplit

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from delivery import hooks
from delivery.node import inject
from delivery.services.webhooks import resolve
from identity.addresses import parse_networks
from identity.services import default_lookup
from identity.verify import Unknown
from mailboxes.models import Domain
from mailhost.errors import Invalid, Unavailable
from nodes.changes import node_default
from routing.models import TlsFailure, TlsReport, TlsReportState, TlsSessionCount
from routing.tlsrpt import tlsrpt_report

logger = logging.getLogger(__name__)

RETRY_DAYS = 3  # a failed report is retried by the runs of this many days
MAX_RUAS = 5  # per domain: a published list longer than this is cut
MAX_ADDRESS = 254
SENDING_STALE = dt.timedelta(hours=1)  # a claim this old was a crashed run: take it again
HTTPS_TIMEOUT = 30
LOOKUP = ""  # the rua of a row that stands for a failed record lookup


@dataclass(frozen=True)
class RunResult:
    sent: int = 0
    failed: int = 0
    skipped: int = 0  # domains without a TLS-RPT record


def tls_reports_send(*, day: dt.date | None = None) -> RunResult:
    """Send the reports of `day` (default: yesterday, UTC) and retry the failed ones of the
    last RETRY_DAYS days."""
    if not settings.MAILHOST_TLSRPT_FROM:
        return RunResult()
    day = day or (timezone.now().astimezone(dt.UTC).date() - dt.timedelta(days=1))
    sent = failed = skipped = 0
    for domain, report_day in _due(day):
        try:
            ruas = _published_ruas(domain)
        except Unknown as exc:
            _lookup_failed(domain, report_day, str(exc))
            failed += 1
            continue
        TlsReport.objects.filter(domain=domain, day=report_day, rua=LOOKUP).delete()
        if not ruas:
            skipped += 1
            continue
        for rua in ruas:
            outcome = _send_one(domain, report_day, rua)
            sent += outcome == TlsReportState.SENT
            failed += outcome == TlsReportState.FAILED
    return RunResult(sent=sent, failed=failed, skipped=skipped)


def _due(day: dt.date) -> list[tuple[str, dt.date]]:
    """The day's recipient domains (a failure or a success recorded), then earlier days'
    failed reports still within RETRY_DAYS."""
    start = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
    end = start + dt.timedelta(days=1)
    domains = set(TlsFailure.objects.filter(at__gte=start, at__lt=end)
                  .values_list("domain", flat=True).distinct())
    domains |= set(TlsSessionCount.objects.filter(day=day).values_list("domain", flat=True)
                   .distinct())
    due = [(domain, day) for domain in sorted(domains)]
    retry = (TlsReport.objects.filter(state=TlsReportState.FAILED, day__lt=day,
                                      day__gte=day - dt.timedelta(days=RETRY_DAYS))
             .values_list("domain", "day").distinct().order_by("day", "domain"))
    return due + [item for item in retry if item not in due]


def _lookup_failed(domain: str, day: dt.date, why: str) -> None:
    """The record could not be read (DNS timeout, SERVFAIL): kept as a failed row without a
    rua, so the staff page says why and the next runs look again."""
    logger.warning("TLS report %s for %s: its record could not be read: %s", day, domain, why)
    report, _ = TlsReport.objects.get_or_create(domain=domain, day=day, rua=LOOKUP,
                                                defaults={"state": TlsReportState.FAILED})
    report.state, report.attempts = TlsReportState.FAILED, report.attempts + 1
    report.last_error = f"the _smtp._tls record could not be read: {why}"[:1000]
    report.save(update_fields=["state", "attempts", "last_error", "updated_at"])


def _published_ruas(domain: str) -> list[str]:
    """The `rua` URIs of the domain's one TLSRPTv1 record (RFC 8460 §3: none if several);
    Unknown when DNS gives no answer either way."""
    texts = default_lookup().texts(f"_smtp._tls.{domain}", "TXT")
    records = [t for t in texts if t.replace(" ", "").lower().startswith("v=tlsrptv1;")]
    if len(records) != 1:
        return []
    for field in records[0].split(";")[1:]:
        name, _, value = field.strip().partition("=")
        if name.strip().lower() == "rua":
            uris = [uri.strip() for uri in value.split(",") if uri.strip()]
            return [uri for uri in uris if uri.lower().startswith(("mailto:", "https:"))][
                :MAX_RUAS]
    return []


def _claim(domain: str, day: dt.date, rua: str) -> TlsReport | None:
    """The row to send now, marked as being sent; None if it was sent or is being sent."""
    report, created = TlsReport.objects.get_or_create(
        domain=domain, day=day, rua=rua[:500],
        defaults={"report_id": f"{day:%Y%m%d}.{uuid.uuid4().hex}@{_submitter()}"})
    if created:
        return report
    stale = timezone.now() - SENDING_STALE
    taken = TlsReport.objects.filter(pk=report.pk).filter(
        Q(state=TlsReportState.FAILED) | Q(state=TlsReportState.SENDING, updated_at__lt=stale),
    ).update(state=TlsReportState.SENDING, updated_at=timezone.now())
    if not taken:
        return None
    report.refresh_from_db()
    return report


def _send_one(domain: str, day: dt.date, rua: str) -> str | None:
    report = _claim(domain, day, rua)
    if report is None:
        return None
    body = tlsrpt_report(domain=domain, day=day, organisation_name=_organisation(),
                         contact_info=settings.MAILHOST_TLSRPT_FROM,
                         report_id=report.report_id)
    gz = gzip.compress(json.dumps(body, separators=(",", ":")).encode(), mtime=0)
    try:
        if rua.lower().startswith("mailto:"):
            _mail(domain, day, _mailto_address(rua), gz, report.report_id)
        else:
            _post(rua, gz)
    except _Failed as exc:
        report.state, report.last_error = TlsReportState.FAILED, str(exc)[:1000]
    else:
        report.state, report.last_error, report.sent_at = TlsReportState.SENT, "", timezone.now()
    report.attempts += 1
    summaries = [p["summary"] for p in body["policies"]]
    report.failure_sessions = sum(s["total-failure-session-count"] for s in summaries)
    report.success_sessions = sum(s["total-successful-session-count"] for s in summaries)
    report.save(update_fields=["state", "last_error", "sent_at", "attempts", "updated_at",
                               "failure_sessions", "success_sessions"])
    if report.state == TlsReportState.FAILED:
        logger.warning("TLS report %s for %s to %s failed: %s", day, domain, rua,
                       report.last_error)
    return report.state


class _Failed(Exception):
    """Why this report did not go (kept on its row; the next run retries)."""


def _submitter() -> str:
    return settings.MAILHOST_TLSRPT_FROM.rpartition("@")[2].lower()


def _organisation() -> str:
    return settings.MAILHOST_TLSRPT_ORGANISATION or _submitter()


def _mailto_address(rua: str) -> str:
    """mailto:addr (RFC 6068; any ?query dropped), checked as one plain address."""
    address = unquote(rua[len("mailto:"):].split("?", 1)[0]).strip()
    local, at, host = address.rpartition("@")
    if (not at or not local or not host or len(address) > MAX_ADDRESS
            or any(c in address for c in "\r\n<>,; \t\"\\")):
        raise _Failed(f"not a usable mailto: address: {rua[:200]!r}")
    return address


def _filename(domain: str, day: dt.date, report_id: str) -> str:
    """§5.3: submitter!policy-domain!begin!end!unique-id.json.gz (UNIX seconds)."""
    begin = int(dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC).timestamp())
    unique = report_id.partition("@")[0].replace("!", "")
    return f"{_submitter()}!{domain}!{begin}!{begin + 86400}!{unique}.json.gz"


def report_message(domain: str, day: dt.date, to: str, gz: bytes, report_id: str) -> bytes:
    """The report mail of RFC 8460 §5.3."""
    sender, submitter = settings.MAILHOST_TLSRPT_FROM, _submitter()
    # Unfolded up to RFC 5322's 998: the §5.3 file name stays one plain parameter that
    # report parsers read (folded, it became an RFC 2231 continuation).
    message = EmailMessage(policy=SMTP.clone(max_line_length=998))
    message["From"] = sender
    message["To"] = to
    message["Subject"] = f"Report Domain: {domain} Submitter: {submitter} Report-ID: <{report_id}>"
    message["Date"] = format_datetime(timezone.now())
    message["Message-ID"] = make_msgid(domain=submitter)
    message["TLS-Report-Domain"] = domain
    message["TLS-Report-Submitter"] = submitter
    message.set_content(f"This is an aggregate TLS report from {submitter} about mail sent to "
                        f"{domain} on {day:%Y-%m-%d} (UTC), per RFC 8460.\n")
    message.add_attachment(gz, maintype="application", subtype="tlsrpt+gzip",
                           filename=_filename(domain, day, report_id))
    message.set_type("multipart/report")
    message.set_param("report-type", "tlsrpt")
    return message.as_bytes()


def _mail(domain: str, day: dt.date, to: str, gz: bytes, report_id: str) -> None:
    sender = settings.MAILHOST_TLSRPT_FROM
    raw = report_message(domain, day, to, gz, report_id)
    hosted = Domain.objects.filter(name=sender.rpartition("@")[2].lower()).select_related(
        "node").first()
    node = hosted.node if hosted is not None else node_default()
    try:
        inject(node, envelope_from=sender, recipients=[to], raw=raw)
    except (Unavailable, Invalid) as exc:
        raise _Failed(str(exc)) from None


def _post(rua: str, gz: bytes) -> None:
    """HTTPS only, to a host whose every address is public (or in the networks staff allowed:
    MAILHOST_TLSRPT_ALLOWED_NETWORKS): the URI comes from someone else's DNS."""
    if urlsplit(rua).scheme.lower() != "https":
        raise _Failed("only https: report URIs are posted to")
    try:
        target = hooks.parse(rua)
        allowed = parse_networks(settings.MAILHOST_TLSRPT_ALLOWED_NETWORKS)
        address = hooks.pinned_address(target, allowed, resolve)
        status, answer = hooks.post(target, address, gz, {
            "Content-Type": "application/tlsrpt+gzip"}, timeout=HTTPS_TIMEOUT,
            context=_tls_context())
    except hooks.Refused as exc:
        raise _Failed(str(exc)) from None
    except (OSError, http.client.HTTPException) as exc:
        raise _Failed(f"{type(exc).__name__}: {exc}") from None
    if not 200 <= status < 300:
        raise _Failed(f"HTTP {status}: {answer[:200]}")


def _tls_context() -> ssl.SSLContext:
    """The system's CAs, or MAILHOST_OUTBOUND_TLS_CA_FILE as for our other outbound TLS."""
    return ssl.create_default_context(cafile=settings.MAILHOST_OUTBOUND_TLS_CA_FILE or None)
