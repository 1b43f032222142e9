"""/mail-admin/<org>/reports/: upload and the log. It works, another tenant gets 404, a viewer
sees the log but may not upload, hostile files are rejected with the reason shown."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from reports.models import AggregateReport, ReportSubmission
from tests.factories import DomainFactory
from tests.reports.corpus import aggregate, billion_laughs

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
