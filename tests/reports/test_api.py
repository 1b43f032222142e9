"""/api/v1/reports and /api/v1/domains/{name}/reports/*: it works, another tenant gets 404,
a read-only token gets 403 on submit, bad input gets a clear 4xx and a recorded rejection."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from reports.models import AggregateReport, ReportSubmission
from tests.api.conftest import ApiClient, make_token
from tests.factories import DomainFactory, OrganisationFactory
from tests.reports.corpus import billion_laughs, fixture, zipped

pytestmark = pytest.mark.django_db


@pytest.fixture
def domain():
    return DomainFactory(name="example.com")


def upload(token: str, data: bytes, name: str = "report.xml", **query):
    api = ApiClient(token)
    path = "/api/v1/reports" + (f"?organisation={query['organisation']}" if query else "")
    return api.client.post(path, {"file": SimpleUploadedFile(name, data)}, headers=api.headers())


def test_it_stores_an_uploaded_report_and_lists_it(domain):
    token = make_token(domain.organisation)
    response = upload(token, zipped(fixture("aggregate-rfc7489.xml")), "report.zip")
    assert response.status_code == 201, response.content
    (result,) = response.json()["results"]
    assert result["outcome"] == "accepted" and result["domain"] == "example.com"

    reports = ApiClient(token).get("/domains/example.com/reports/dmarc").json()
    assert reports["count"] == 1
    item = reports["items"][0]
    assert (item["reporter"], item["messages"], item["sources"]) == ("acme.com", 122, 2)
    log = ApiClient(token).get("/reports/submissions").json()
    assert [i["outcome"] for i in log["items"]] == ["accepted"]
    assert log["items"][0]["source"] == "api"


def test_the_same_report_twice_is_200_and_stored_once(domain):
    token = make_token(domain.organisation)
    assert upload(token, fixture("aggregate-rfc7489.xml")).status_code == 201
    again = upload(token, fixture("aggregate-rfc7489.xml"))
    assert again.status_code == 200
    assert again.json()["results"][0]["outcome"] == "duplicate"
    assert AggregateReport.objects.count() == 1


def test_hostile_input_is_422_with_the_reason_recorded(domain):
    token = make_token(domain.organisation)
    response = upload(token, billion_laughs())
    assert response.status_code == 422
    assert "DTD" in response.json()["results"][0]["reason"]
    assert not AggregateReport.objects.exists()
    assert ReportSubmission.objects.get().outcome == "rejected"


def test_a_body_over_the_limit_is_413_before_it_is_read(domain, settings):
    settings.API_BULK_MAX_BODY_BYTES = 1024 * 1024
    response = upload(make_token(domain.organisation), b"<" + b" " * (2 * 1024 * 1024))
    assert response.status_code == 413
    assert not ReportSubmission.objects.exists()


def test_tls_and_failure_reports_are_listed():
    domain = DomainFactory(name="company-y.example")
    DomainFactory(name="example.com", organisation=domain.organisation)
    token = make_token(domain.organisation)
    assert upload(token, fixture("tlsrpt-rfc8460.json"), "r.json").status_code == 201
    assert upload(token, fixture("failure-rfc6591.eml"), "r.eml").status_code == 201
    tls = ApiClient(token).get("/domains/company-y.example/reports/tls").json()
    assert tls["items"][0]["failures"] == 303
    assert tls["items"][0]["policies"][0]["failure_details"][0]["result_type"] == (
        "certificate-expired")
    failures = ApiClient(token).get("/domains/example.com/reports/failures").json()
    assert failures["items"][0]["auth_failure"] == "dmarc"
    assert "alice" not in str(failures)


def test_another_tenant_gets_404_and_a_read_only_token_403(domain):
    upload(make_token(domain.organisation), fixture("aggregate-rfc7489.xml"))
    intruder = make_token(OrganisationFactory())
    for path in ("dmarc", "tls", "failures"):
        assert ApiClient(intruder).get(f"/domains/example.com/reports/{path}").status_code == 404
    named = upload(intruder, fixture("aggregate-rfc7489.xml"),
                   organisation=domain.organisation.slug)
    assert named.status_code == 404
    # Into its own organisation, the report about someone else's domain is a rejection.
    own = upload(intruder, fixture("aggregate-rfc7489.xml"))
    assert own.status_code == 422
    assert "not a domain of this organisation" in own.json()["results"][0]["reason"]
    read_only = make_token(domain.organisation, read_only=True, name="ro")
    assert upload(read_only, fixture("aggregate-rfc7489.xml")).status_code == 403
    assert AggregateReport.objects.count() == 1


def test_the_summary_names_the_failing_sender(domain):
    import time

    from tests.reports.corpus import aggregate

    token = make_token(domain.organisation)
    rows = [("192.0.2.25", 100, "pass", "pass"), ("203.0.113.50", 5, "fail", "fail"),
            ("203.0.113.50", 20, "pass", "fail")]
    upload(token, aggregate(rows=rows, begin=int(time.time()) - 86400))
    summary = ApiClient(token).get("/domains/example.com/reports").json()
    assert (summary["messages"], summary["aligned"]) == (125, 120)
    assert [(s["ip"], s["status"]) for s in summary["sources"]] == [
        ("203.0.113.50", "legitimate"), ("192.0.2.25", "aligned")]
    assert summary["blocked_by"][0].startswith("203.0.113.50 sent 5 messages")
    assert summary["sources"][0]["name"] == "" and not summary["sources"][0]["name_confirmed"]
    assert ApiClient(make_token(OrganisationFactory())).get(
        "/domains/example.com/reports").status_code == 404
