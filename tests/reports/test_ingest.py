"""report_submit: reports land in their domain's data once; anything else is a recorded
rejection and nothing more."""

import gzip
import io

import pytest

from mailhost.errors import Forbidden, NotFound
from reports.models import (
    AggregateRecord,
    AggregateReport,
    FailureReport,
    ReportSubmission,
    TlsPolicyResult,
    TlsReport,
)
from reports.services import report_submit
from tenants.access import SYSTEM, Actor
from tests.factories import DomainFactory, MembershipFactory, OrganisationFactory
from tests.reports.corpus import aggregate, billion_laughs, fixture, invalid_utf8, zip_bomb

pytestmark = pytest.mark.django_db

STORED = (AggregateReport, AggregateRecord, TlsReport, TlsPolicyResult, FailureReport)


@pytest.fixture
def domain():
    return DomainFactory(name="example.com")


def submit(data: bytes, *, organisation=None, source="mail", actor=SYSTEM):
    return report_submit(actor=actor, stream=io.BytesIO(data), source=source,
                         organisation=organisation)


def stored_counts() -> dict:
    return {model.__name__: model.objects.count() for model in STORED}


def test_it_stores_an_aggregate_report_with_its_rows(domain):
    (result,) = submit(fixture("aggregate-rfc7489.xml"))
    assert (result.outcome, result.kind, result.domain) == ("accepted", "dmarc-aggregate",
                                                            "example.com")
    report = AggregateReport.objects.get(domain=domain)
    assert report.messages == 122
    assert sorted(report.records.values_list("source_ip", "count")) == [
        ("192.0.2.25", 120), ("198.51.100.77", 2)]
    submission = ReportSubmission.objects.get(pk=result.submission_id)
    assert submission.organisation_id == domain.organisation_id
    assert submission.outcome == "accepted" and submission.reason == ""


def test_it_stores_tls_and_failure_reports():
    DomainFactory(name="company-y.example")
    domain = DomainFactory(name="example.com")
    assert submit(fixture("tlsrpt-rfc8460.json"))[0].outcome == "accepted"
    tls = TlsReport.objects.get()
    assert (tls.successes, tls.failures) == (5326, 303)
    assert tls.policies.get().failure_details[0]["result_type"] == "certificate-expired"
    assert submit(fixture("failure-rfc6591.eml"))[0].outcome == "accepted"
    failure = FailureReport.objects.get(domain=domain)
    assert failure.auth_failure == "dmarc" and failure.expires_at > failure.received_at


def test_it_stores_a_report_once(domain):
    data = fixture("aggregate-rfc7489.xml")
    submit(data)
    before = stored_counts()
    # The same report again, recompressed and forwarded: same reporter, same report id.
    (again,) = submit(gzip.compress(data))
    assert again.outcome == "duplicate"
    assert stored_counts() == before
    assert ReportSubmission.objects.filter(outcome="duplicate").count() == 1


@pytest.mark.parametrize("data, words", [
    (billion_laughs(), "DTD"),
    (zip_bomb(64 * 1024 * 1024), "uncompressed"),
    (aggregate()[:-30], "malformed"),
    (invalid_utf8(), "not UTF-8"),
    (b"x" * 2048, "larger than 1024 bytes"),
    (aggregate(rows=[("192.0.2.1", 1, "pass", "pass"), ("bad", 1, "pass", "pass")]),
     "not an IP address"),
], ids=["billion-laughs", "zip-bomb", "malformed", "invalid-utf8", "too-large", "bad-row"])
def test_it_records_hostile_input_as_a_rejection_and_nothing_else(domain, settings, data, words):
    settings.MAILHOST_REPORT_MAX_UNCOMPRESSED_BYTES = 1024 * 1024
    if words.startswith("larger than 1024"):
        settings.MAILHOST_REPORT_MAX_BYTES = 1024
    (result,) = submit(data)
    assert result.outcome == "rejected" and words in result.reason
    assert stored_counts() == dict.fromkeys(stored_counts(), 0)  # a half-read report: gone
    submission = ReportSubmission.objects.get()
    assert submission.outcome == "rejected" and words in submission.reason


def test_it_rejects_a_report_for_a_domain_not_hosted_here(domain):
    (result,) = submit(aggregate(domain="elsewhere.example"))
    assert result.outcome == "rejected"
    assert "elsewhere.example, which is not a domain hosted here" in result.reason
    assert stored_counts() == dict.fromkeys(stored_counts(), 0)
    assert ReportSubmission.objects.get().organisation is None  # staff see it


def test_an_upload_counts_only_for_the_uploaders_own_domains(domain):
    other = OrganisationFactory()
    owner = MembershipFactory(organisation=other, role="owner").user
    (result,) = submit(fixture("aggregate-rfc7489.xml"), organisation=other, source="upload",
                       actor=Actor(user=owner))
    # Another tenant's domain reads exactly like a domain hosted nowhere.
    assert result.outcome == "rejected"
    assert result.reason == ("The report is about example.com, which is not a domain of this "
                             "organisation.")
    assert not AggregateReport.objects.exists()
    assert ReportSubmission.objects.get().organisation == other


def test_a_viewer_cannot_upload_and_an_outsider_gets_404(domain):
    viewer = MembershipFactory(organisation=domain.organisation, role="viewer").user
    with pytest.raises(Forbidden):
        submit(fixture("aggregate-rfc7489.xml"), organisation=domain.organisation,
               source="upload", actor=Actor(user=viewer))
    outsider = MembershipFactory(role="owner").user
    with pytest.raises(NotFound):
        submit(fixture("aggregate-rfc7489.xml"), organisation=domain.organisation,
               source="upload", actor=Actor(user=outsider))
    assert not ReportSubmission.objects.exists()
