"""/mail-admin/<org>/reports/: upload and the log. It works, another tenant gets 404, a viewer
sees the log but may not upload, hostile files are rejected with the reason shown."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from reports.models import AggregateReport, ReportSubmission
from tests.factories import DomainFactory
from tests.reports.corpus import aggregate, billion_laughs, fixture

URL = "/mail-admin/acme/reports/"


@pytest.fixture
def domain(org):
    return DomainFactory(organisation=org, name="acme.test")


def upload(client, data: bytes):
    return client.post(URL, {"file": SimpleUploadedFile("report.xml", data)}, follow=True)


def test_it_stores_an_upload_and_lists_it(owner_client, domain):
    page = upload(owner_client, aggregate(domain="acme.test", report_id="page-1"))
    assert page.status_code == 200
    text = page.content.decode()
    assert "Stored the dmarc-aggregate report page-1 about acme.test" in text
    assert "acme.test" in text and "Accepted" in text
    assert AggregateReport.objects.get().domain == domain


def test_a_hostile_file_is_422_and_its_reason_is_shown(owner_client, domain):
    page = upload(owner_client, billion_laughs())
    assert page.status_code == 422
    assert "DTD" in page.content.decode()
    assert not AggregateReport.objects.exists()
    assert ReportSubmission.objects.get().outcome == "rejected"


def test_a_viewer_sees_the_log_but_cannot_upload(viewer_client, domain):
    assert viewer_client.get(URL).status_code == 200
    assert upload(viewer_client, aggregate(domain="acme.test")).status_code == 403
    assert not ReportSubmission.objects.exists()


def test_another_tenant_gets_404(stranger_client, domain):
    assert stranger_client.get(URL).status_code == 404
    assert upload(stranger_client, aggregate(domain="acme.test")).status_code == 404
    assert not ReportSubmission.objects.exists()


def test_a_form_without_a_file_is_422(owner_client, domain):
    assert owner_client.post(URL, {}).status_code == 422


def test_the_domain_page_shows_the_chart_the_sources_and_the_tls_results(owner_client, domain):
    import json
    import time

    begin = int(time.time()) - 86400
    rows = [("192.0.2.25", 120, "pass", "pass"), ("203.0.113.50", 30, "pass", "fail"),
            ("203.0.113.50", 10, "fail", "fail")]
    upload(owner_client, aggregate(domain="acme.test", report_id="chart-1", rows=rows,
                                   begin=begin))
    tls = json.loads(fixture("tlsrpt-rfc8460.json"))
    tls["policies"][0]["policy"]["policy-domain"] = "acme.test"
    tls["date-range"]["end-datetime"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    upload(owner_client, json.dumps(tls).encode())

    from django.utils import timezone

    from reports.models import SourceName

    SourceName.objects.create(ip="203.0.113.50", name="mta.esp.example", confirmed=False,
                              checked_at=timezone.now())
    page = owner_client.get("/mail-admin/acme/domains/acme.test/reports/")
    assert page.status_code == 200
    text = page.content.decode()
    assert "mta.esp.example (not forward-confirmed)" in text
    assert '<rect class="dmarc-aligned"' in text and '<rect class="dmarc-failing"' in text
    assert "93.8 % of 160 messages aligned over 14 days from 2 known sources." in text
    # The partly failing sender is highlighted first, and the advice says why not to tighten.
    first_row = text.index('<tr class="source-')
    assert text[first_row:].startswith('<tr class="source-legitimate">')
    assert "203.0.113.50 sent 10 messages as acme.test that failed DMARC" in text
    assert "certificate-expired</code> 100" in text and "Company-X" in text


def test_the_domain_page_is_404_for_another_tenant_and_readable_by_a_viewer(
        stranger_client, viewer_client, domain):
    assert stranger_client.get("/mail-admin/acme/domains/acme.test/reports/").status_code == 404
    assert stranger_client.get("/mail-admin/globex/domains/acme.test/reports/").status_code == 404
    assert viewer_client.get("/mail-admin/acme/domains/acme.test/reports/").status_code == 200
