"""Reports sent over SMTP to the addresses the portal publishes land in the domain's data
within one run of the intake task, against the real Postfix: an outside server delivers to
the MX port, Postfix spools (no portal involved), the task reads the spool."""

import gzip
import json
from email.message import EmailMessage

import pytest

from identity.selectors import posture_of
from mailboxes import services
from nodes.reconcile import reconcile_incremental
from reports.models import AggregateReport, ReportSubmission, TlsReport
from reports.tasks import intake
from tenants.access import SYSTEM
from tests.factories import OrganisationFactory
from tests.reports.corpus import aggregate, fixture
from tests.security.two_tenants import forget_rows
from tests.stack import smtp_send, unique_domain, wait_for

pytestmark = [pytest.mark.stack, pytest.mark.django_db]

REPORTER = "noreply-dmarc-support@receiver.example"


@pytest.fixture
def hosted(stack_node, mail_stack):
    domain = services.domain_create(actor=SYSTEM, organisation=OrganisationFactory(),
                                    name=unique_domain("rua"))
    reconcile_incremental(stack_node)
    yield domain
    forget_rows(mail_stack, domain.name)


def report_mail(to: str, attachment: bytes, *, subtype: str, filename: str) -> EmailMessage:
    message = EmailMessage()
    message["From"], message["To"] = REPORTER, to
    message["Subject"] = f"Report domain: {to.partition('@')[2]}"
    message.set_content("A report is attached.")
    message.add_attachment(attachment, maintype="application", subtype=subtype,
                           filename=filename)
    return message


def spooled(mail_stack) -> list:
    new = mail_stack.cfg.report_spool / "new"
    return sorted(new.iterdir()) if new.exists() else []


def published(address_uri: str) -> str:
    assert address_uri.startswith("mailto:")
    return address_uri.removeprefix("mailto:")


def test_a_report_sent_to_the_published_rua_lands_in_the_domains_data(hosted, stack_node,
                                                                     mail_stack):
    rua = published(posture_of(hosted).dmarc_rua[0])
    assert rua == f"dmarc-reports@{hosted.name}"
    before = len(spooled(mail_stack))
    xml = aggregate(domain=hosted.name, report_id="over-smtp-1", org="receiver.example")
    smtp_send(mail_stack, "smtp", REPORTER, rua,
              report_mail(rua, gzip.compress(xml), subtype="gzip", filename="r.xml.gz"))
    # Postfix alone has written it to the node's spool: nothing of the portal was needed.
    wait_for(lambda: len(spooled(mail_stack)) > before)

    intake.apply(args=[stack_node.pk]).get()

    report = AggregateReport.objects.get(domain=hosted)
    assert (report.report_id, report.messages) == ("over-smtp-1", 120)
    assert ReportSubmission.objects.get(domain=hosted).source == "mail"
    assert spooled(mail_stack) == []


def test_a_tls_report_sent_to_the_published_tls_rpt_address_lands_too(hosted, stack_node,
                                                                      mail_stack):
    rua = published(posture_of(hosted).tlsrpt_rua[0])
    body = json.loads(fixture("tlsrpt-rfc8460.json"))
    body["policies"][0]["policy"]["policy-domain"] = hosted.name
    data = gzip.compress(json.dumps(body).encode())
    smtp_send(mail_stack, "smtp", REPORTER, rua,
              report_mail(rua, data, subtype="tlsrpt+gzip", filename="r.json.gz"))
    wait_for(lambda: spooled(mail_stack))

    intake.apply(args=[stack_node.pk]).get()

    assert TlsReport.objects.get(domain=hosted).failures == 303


def test_a_catch_all_does_not_take_the_reports_away(hosted, stack_node, mail_stack):
    services.alias_create(actor=SYSTEM, domain=hosted, local_part="",
                          destinations=["someone@elsewhere.example"])
    reconcile_incremental(stack_node)
    rua = f"dmarc-reports@{hosted.name}"
    xml = aggregate(domain=hosted.name, report_id="catch-all-1", org="receiver.example")
    smtp_send(mail_stack, "smtp", REPORTER, rua,
              report_mail(rua, xml, subtype="xml", filename="r.xml"))
    wait_for(lambda: spooled(mail_stack))
    intake.apply(args=[stack_node.pk]).get()
    assert AggregateReport.objects.filter(domain=hosted, report_id="catch-all-1").exists()
