"""Housekeeping for reports: each kind is kept for its configured time, then deleted.

Aggregate and TLS reports by the end of the period they cover (MAILHOST_REPORT_RETENTION_DAYS),
failure samples at their own expiry (set at arrival from
MAILHOST_REPORT_FAILURE_RETENTION_DAYS: they carry personal data), the submission log by
arrival (MAILHOST_REPORT_SUBMISSION_RETENTION_DAYS). A setting of 0 keeps that kind forever.
"""

from __future__ import annotations

import datetime as dt
import logging

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from reports.models import AggregateReport, FailureReport, ReportSubmission, TlsReport

logger = logging.getLogger(__name__)


def retention_cutoff(days: int, now: dt.datetime) -> dt.datetime | None:
    """The moment before which data kept `days` days is past retention; None for 0 (forever)."""
    return now - dt.timedelta(days=days) if days > 0 else None


@transaction.atomic
def reports_prune(*, now: dt.datetime | None = None) -> dict[str, int]:
    """Delete what is past retention; {kind: rows deleted} (records go with their reports)."""
    now = now or timezone.now()
    deleted = {"dmarc-aggregate": 0, "tls": 0, "dmarc-failure": 0, "submissions": 0}
    cutoff = retention_cutoff(settings.MAILHOST_REPORT_RETENTION_DAYS, now)
    if cutoff is not None:
        deleted["dmarc-aggregate"] = _count(AggregateReport.objects.filter(end__lt=cutoff),
                                            AggregateReport)
        deleted["tls"] = _count(TlsReport.objects.filter(end__lt=cutoff), TlsReport)
    deleted["dmarc-failure"] = _count(FailureReport.objects.filter(expires_at__lte=now),
                                      FailureReport)
    cutoff = retention_cutoff(settings.MAILHOST_REPORT_SUBMISSION_RETENTION_DAYS, now)
    if cutoff is not None:
        deleted["submissions"] = _count(
            ReportSubmission.objects.filter(received_at__lt=cutoff), ReportSubmission)
    logger.info("reports pruned: %s", deleted)
    return deleted


def _count(queryset, model) -> int:
    """Rows of `model` itself deleted (not the cascaded records)."""
    return queryset.delete()[1].get(model._meta.label, 0)
