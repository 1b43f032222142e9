"""reports.prune: removes what is past retention, and only that."""

import datetime as dt
import io

import pytest
from django.utils import timezone

from reports.models import (
    AggregateRecord,
    AggregateReport,
    FailureReport,
    ReportSubmission,
    TlsReport,
)
from reports.retention import reports_prune
from reports.services import report_submit
from tenants.access import SYSTEM
from tests.factories import DomainFactory
from tests.reports.corpus import aggregate, fixture

pytestmark = pytest.mark.django_db

DAY = 86400


def submit(data: bytes):
    (result,) = report_submit(actor=SYSTEM, stream=io.BytesIO(data), source="mail")
    assert result.outcome == "accepted", result.reason


@pytest.fixture
def stored(settings):
    settings.MAILHOST_REPORT_RETENTION_DAYS = 30
    settings.MAILHOST_REPORT_SUBMISSION_RETENTION_DAYS = 10
    DomainFactory(name="example.com")
    DomainFactory(name="company-y.example")
    now = int(timezone.now().timestamp())
    submit(aggregate(report_id="old", begin=now - 40 * DAY))  # ended 39 days ago
    submit(aggregate(report_id="fresh", begin=now - 20 * DAY))  # ended 19 days ago
    submit(fixture("tlsrpt-rfc8460.json"))  # 2016: long past
    submit(fixture("failure-rfc6591.eml"))


def test_it_removes_only_what_is_past_retention(stored):
    now = timezone.now()
    assert reports_prune(now=now) == {"dmarc-aggregate": 1, "tls": 1, "dmarc-failure": 0,
                                      "submissions": 0}
    assert list(AggregateReport.objects.values_list("report_id", flat=True)) == ["fresh"]
    assert AggregateRecord.objects.filter(report__report_id="fresh").count() == 1
    assert AggregateRecord.objects.count() == 1  # the old report's rows went with it
    assert not TlsReport.objects.exists()
    assert FailureReport.objects.count() == 1 and ReportSubmission.objects.count() == 4


def test_failure_samples_and_the_log_expire_on_their_own_clocks(stored):
    later = timezone.now() + dt.timedelta(days=31)  # failure samples: 30 days; log: 10
    deleted = reports_prune(now=later)
    assert (deleted["dmarc-failure"], deleted["submissions"]) == (1, 4)
    assert not FailureReport.objects.exists() and not ReportSubmission.objects.exists()
    assert reports_prune(now=later) == dict.fromkeys(deleted, 0)  # nothing twice


def test_zero_keeps_reports_forever(stored, settings):
    settings.MAILHOST_REPORT_RETENTION_DAYS = 0
    settings.MAILHOST_REPORT_SUBMISSION_RETENTION_DAYS = 0
    deleted = reports_prune(now=timezone.now() + dt.timedelta(days=3650))
    assert (deleted["dmarc-aggregate"], deleted["tls"], deleted["submissions"]) == (0, 0, 0)
    assert AggregateReport.objects.count() == 2 and TlsReport.objects.count() == 1
