"""Outgoing SMTP TLS reports (RFC 8460): yesterday's TLS outcomes toward each recipient domain
go to the `rua` it publishes at `_smtp._tls` (a real DNS server on loopback): by mail through
the node (DKIM-signed, received by the fake internet MX) or by HTTPS POST (a loopback HTTPS
server with a test CA). Once each; a domain that publishes nothing gets nothing; a failure
keeps its reason and the next run sends it."""

import datetime as dt
import email
import email.policy
import gzip
import json
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import dkim
import pytest
from django.test import Client
from django.utils import timezone

from routing.models import TlsFailure, TlsReport, TlsSessionCount
from routing.services import tls_reports_send
from routing.tasks import send_tls_reports
from tests.delivery.support import published_txt
from tests.factories import UserFactory
from tests.routing.fake_relay import test_ca as make_ca
from tests.stack import make_message, smtp_send, unique_domain, wait_for

YESTERDAY = timezone.now().astimezone(dt.UTC).date() - dt.timedelta(days=1)


def net_domain(prefix: str) -> str:
    """A recipient "on the internet" (*.example reaches the fake MX)."""
    return f"{unique_domain(prefix).removesuffix('.test')}.example"


def record_outcomes(domain: str, *, failures: int, successes: int) -> None:
    """What the nodes' event agents recorded yesterday toward `domain` (routing collects it)."""
    at = dt.datetime.combine(YESTERDAY, dt.time(12), tzinfo=dt.UTC)
    for n in range(failures):
        TlsFailure.objects.create(
            node_name="elsewhere", node_event_id=hash((domain, n)) % 10**9, at=at,
            domain=domain, mx_host=f"mx.{domain}", mx_ip="192.0.2.25", policy_type="sts",
            policy_strings=["version: STSv1", "mode: enforce", f"mx: mx.{domain}"],
            result_type="certificate-host-mismatch", detail="certificate name mismatch")
    TlsSessionCount.objects.create(node_name="elsewhere", day=YESTERDAY, domain=domain,
                                   successes=successes)


class ReportSink:
    """A loopback HTTPS server (test CA) that keeps every POST it is sent."""

    def __init__(self, hostname: str, tmp_path):
        ca, cert, key = make_ca(hostname)
        (tmp_path / "ca.pem").write_bytes(ca)
        (tmp_path / "cert.pem").write_bytes(cert)
        (tmp_path / "key.pem").write_bytes(key)
        self.ca_file = str(tmp_path / "ca.pem")
        self.posts: list[tuple[str, str, bytes]] = []
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                sink.posts.append((self.path, self.headers["Content-Type"], body))
                self.send_response(201)
                self.end_headers()

            def log_message(self, *args):
                pass

        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def sink(tmp_path):
    made = []

    def make(hostname: str) -> ReportSink:
        made.append(ReportSink(hostname, tmp_path))
        return made[-1]

    yield make
    for server in made:
        server.stop()


def tlsrpt_zone(rua: str, extra: str = "") -> str:
    return f'_smtp._tls IN TXT "v=TLSRPTv1; rua={rua}"\n{extra}'


@pytest.mark.stack
def test_it_mails_and_posts_one_report_per_published_rua_and_never_twice(
    settings, knot, sink, hosted_domains, internet, mail_stack
):
    reporter = hosted_domains(prefix="rpt", mailboxes=())
    mailed, posted, quiet = net_domain("mailme"), net_domain("postme"), net_domain("quiet")
    web = sink(f"reports.{posted}")
    rua_address = f"tls-reports@{mailed}"
    dns = knot(zones={
        mailed: tlsrpt_zone(f"mailto:{rua_address}"),
        posted: tlsrpt_zone(f"https://reports.{posted}:{web.port}/tlsrpt",
                            "reports IN A 127.0.0.1"),
        quiet: "@ IN TXT \"v=spf1 -all\"",
    })
    settings.MAILHOST_DNS_RESOLVERS = [dns.address]
    settings.MAILHOST_TLSRPT_FROM = f"tls-reports@{reporter.name}"
    settings.MAILHOST_TLSRPT_ORGANISATION = "Mailhost Test Install"
    settings.MAILHOST_TLSRPT_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    settings.MAILHOST_OUTBOUND_TLS_CA_FILE = web.ca_file
    for domain in (mailed, posted, quiet):
        record_outcomes(domain, failures=2, successes=5)

    assert send_tls_reports() == {"sent": 2, "failed": 0, "skipped": 1}

    received = wait_for(lambda: internet.received_by(rua_address), timeout=30)
    assert len(received) == 1
    raw = received[0].data
    assert dkim.verify(raw, dnsfunc=published_txt(mail_stack))
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert message.get_content_type() == "multipart/report"
    assert message.get_param("report-type") == "tlsrpt"
    assert message["TLS-Report-Domain"] == mailed
    assert message["TLS-Report-Submitter"] == reporter.name
    assert message["Subject"].startswith(
        f"Report Domain: {mailed} Submitter: {reporter.name} Report-ID: <")
    [attachment] = [p for p in message.iter_attachments()
                    if p.get_content_type() == "application/tlsrpt+gzip"]
    assert attachment.get_filename().startswith(f"{reporter.name}!{mailed}!")
    assert f'filename="{reporter.name}!{mailed}!'.encode() in raw  # one plain parameter
    report = json.loads(gzip.decompress(attachment.get_content()))
    assert report["organization-name"] == "Mailhost Test Install"
    [policy] = report["policies"]
    assert policy["policy"]["policy-domain"] == mailed and policy["policy"]["policy-type"] == "sts"
    assert policy["summary"] == {"total-successful-session-count": 5,
                                 "total-failure-session-count": 2}
    [detail] = policy["failure-details"]
    assert detail["result-type"] == "certificate-host-mismatch"
    assert detail["receiving-mx-hostname"] == f"mx.{mailed}"

    [(path, content_type, body)] = web.posts
    assert path == "/tlsrpt" and content_type == "application/tlsrpt+gzip"
    assert json.loads(gzip.decompress(body))["policies"][0]["policy"]["policy-domain"] == posted

    # The same day again: nothing more goes anywhere.
    assert tls_reports_send(day=YESTERDAY).sent == 0
    sentinel = make_message(settings.MAILHOST_TLSRPT_FROM, rua_address, "after the rerun")
    smtp_send(mail_stack, "internal", settings.MAILHOST_TLSRPT_FROM, rua_address, sentinel)
    wait_for(lambda: len(internet.received_by(rua_address)) >= 2, timeout=30)
    assert [b"after the rerun" in m.data for m in internet.received_by(rua_address)] == \
        [False, True]
    assert len(web.posts) == 1
    assert not any(quiet in rcpt for m in internet.messages for rcpt in m.rcpt_tos)
    rows = TlsReport.objects.order_by("domain")
    assert sorted((r.domain, r.state, r.attempts) for r in rows) == sorted(
        [(mailed, "sent", 1), (posted, "sent", 1)])

    staff = Client()
    staff.force_login(UserFactory(is_superuser=True, is_staff=True))
    page = staff.get("/mail-admin/outbound/tls/").content.decode()
    assert "TLS reports sent" in page and f"mailto:{rua_address}" in page and mailed in page


@pytest.mark.django_db
def test_a_failed_report_keeps_its_reason_and_the_next_run_sends_it(settings, knot, sink):
    posted = net_domain("retry")
    web = sink(f"reports.{posted}")
    dns = knot(zones={posted: tlsrpt_zone(f"https://reports.{posted}:{web.port}/in",
                                          "reports IN A 127.0.0.1")})
    settings.MAILHOST_DNS_RESOLVERS = [dns.address]
    settings.MAILHOST_TLSRPT_FROM = "tls-reports@reporter.example"
    settings.MAILHOST_OUTBOUND_TLS_CA_FILE = web.ca_file
    settings.MAILHOST_TLSRPT_ALLOWED_NETWORKS = []  # loopback is not the public internet
    record_outcomes(posted, failures=1, successes=0)

    first = tls_reports_send(day=YESTERDAY)
    assert (first.sent, first.failed) == (0, 1) and web.posts == []
    row = TlsReport.objects.get(domain=posted)
    assert row.state == "failed" and "loopback" in row.last_error.lower()

    settings.MAILHOST_TLSRPT_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    today = YESTERDAY + dt.timedelta(days=1)  # the next day's run retries yesterday's failure
    assert tls_reports_send(day=today).sent == 1
    row.refresh_from_db()
    assert (row.state, row.attempts, row.last_error) == ("sent", 2, "")
    assert len(web.posts) == 1
    assert tls_reports_send(day=today).sent == 0 and len(web.posts) == 1

    settings.MAILHOST_METRICS_TOKEN = "scrape-token-tlsrpt"
    scraped = Client().get("/metrics", headers={"Authorization": "Bearer scrape-token-tlsrpt"})
    assert 'mailhost_tls_reports_sent{state="sent"} 1.0' in scraped.content.decode()


@pytest.mark.django_db
def test_nothing_is_sent_while_no_sending_address_is_set(settings, knot):
    domain = net_domain("off")
    dns = knot(zones={domain: tlsrpt_zone("mailto:r@x.example")})
    settings.MAILHOST_DNS_RESOLVERS = [dns.address]
    settings.MAILHOST_TLSRPT_FROM = ""
    record_outcomes(domain, failures=1, successes=1)
    assert tls_reports_send(day=YESTERDAY).sent == 0
    assert not TlsReport.objects.exists()


@pytest.mark.django_db
def test_a_record_that_cannot_be_read_is_a_failure_looked_up_again_next_run(
    settings, knot, silent_dns, sink
):
    posted = net_domain("slowdns")
    web = sink(f"reports.{posted}")
    settings.MAILHOST_TLSRPT_FROM = "tls-reports@reporter.example"
    settings.MAILHOST_DNS_RESOLVERS = [silent_dns]
    settings.MAILHOST_DNS_TIMEOUT_MS = settings.MAILHOST_DNS_LIFETIME_MS = 300
    record_outcomes(posted, failures=1, successes=0)

    assert tls_reports_send(day=YESTERDAY).failed == 1
    lookup = TlsReport.objects.get(domain=posted)
    assert (lookup.rua, lookup.state) == ("", "failed")
    assert "_smtp._tls record could not be read" in lookup.last_error

    dns = knot(zones={posted: tlsrpt_zone(f"https://reports.{posted}:{web.port}/in",
                                          "reports IN A 127.0.0.1")})
    settings.MAILHOST_DNS_RESOLVERS = [dns.address]
    settings.MAILHOST_OUTBOUND_TLS_CA_FILE = web.ca_file
    settings.MAILHOST_TLSRPT_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    assert tls_reports_send(day=YESTERDAY + dt.timedelta(days=1)).sent == 1
    assert [(r.rua, r.state) for r in TlsReport.objects.filter(domain=posted)] == [
        (f"https://reports.{posted}:{web.port}/in", "sent")]
    assert len(web.posts) == 1
