"""Reports about the hosted domains' mail, as receivers sent them: DMARC aggregate and failure
reports and SMTP TLS reports, and the log of every submission (accepted, duplicate, rejected).

A report belongs to the domain it is about (policy_published/domain, policy-domain,
Reported-Domain), and through it to an organisation. One report id from one reporter is stored
once: the database's unique constraints decide, so two copies arriving at once still make one.
"""

from django.db import models
from django.db.models import Q

from mailboxes.models import Domain
from tenants.models import Organisation


class Kind(models.TextChoices):
    AGGREGATE = "dmarc-aggregate", "DMARC aggregate"
    FAILURE = "dmarc-failure", "DMARC failure"
    TLS = "tls", "SMTP TLS"


class Source(models.TextChoices):
    UPLOAD = "upload", "Upload (portal)"
    API = "api", "API"
    MAIL = "mail", "Mail intake"


class Outcome(models.TextChoices):
    ACCEPTED = "accepted", "Accepted"
    DUPLICATE = "duplicate", "Duplicate (already stored)"
    REJECTED = "rejected", "Rejected"


class ReportSubmission(models.Model):
    """One report (or one refused submission) as it arrived: what happened to it, and why."""

    organisation = models.ForeignKey(
        Organisation, null=True, blank=True, on_delete=models.CASCADE, related_name="+",
        help_text="Empty: a submission by mail that named no domain of any organisation "
                  "(staff see it).",
    )
    domain = models.ForeignKey(Domain, null=True, blank=True, on_delete=models.SET_NULL,
                               related_name="+")
    source = models.CharField(max_length=10, choices=Source.choices)
    kind = models.CharField(max_length=20, choices=Kind.choices, blank=True)
    outcome = models.CharField(max_length=10, choices=Outcome.choices)
    reason = models.CharField(max_length=500, blank=True)
    reporter = models.CharField(max_length=255, blank=True)
    report_id = models.CharField(max_length=255, blank=True)
    size = models.PositiveIntegerField(default=0)
    sha256 = models.CharField(max_length=64, blank=True)
    received_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-received_at", "-id"]
        indexes = [models.Index(fields=["organisation", "-received_at"], name="reportsub_org_time")]
        constraints = [
            models.CheckConstraint(condition=Q(outcome__in=Outcome.values),
                                   name="reportsub_outcome_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.received_at:%Y-%m-%d %H:%M} {self.kind or '?'} {self.outcome}"


class AggregateReport(models.Model):
    domain = models.ForeignKey(Domain, on_delete=models.CASCADE, related_name="dmarc_reports")
    org_name = models.CharField(max_length=255)
    org_email = models.CharField(max_length=255, blank=True)
    report_id = models.CharField(max_length=255)
    begin = models.DateTimeField()
    end = models.DateTimeField(db_index=True)
    policy = models.CharField(max_length=20, blank=True)
    subdomain_policy = models.CharField(max_length=20, blank=True)
    pct = models.PositiveSmallIntegerField(null=True, blank=True)
    adkim = models.CharField(max_length=2, blank=True)
    aspf = models.CharField(max_length=2, blank=True)
    version = models.CharField(max_length=10, blank=True)
    messages = models.PositiveBigIntegerField(default=0)
    received_at = models.DateTimeField()

    class Meta:
        ordering = ["-end", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["domain", "org_name", "report_id"],
                                    name="dmarc_report_once"),
        ]

    def __str__(self) -> str:
        return f"{self.domain.name}: {self.org_name} {self.report_id}"


class AggregateRecord(models.Model):
    """One row: messages from one source IP with one set of results."""

    report = models.ForeignKey(AggregateReport, on_delete=models.CASCADE, related_name="records")
    source_ip = models.GenericIPAddressField()
    count = models.PositiveIntegerField()
    disposition = models.CharField(max_length=20, blank=True)
    dkim_aligned = models.BooleanField()
    spf_aligned = models.BooleanField()
    # Some DKIM signature or SPF check passed, for whatever domain: a real mail service that
    # is not aligned (a newsletter tool), rather than a forger (reports.figures).
    authenticated = models.BooleanField(default=False)
    header_from = models.CharField(max_length=255, blank=True)
    envelope_from = models.CharField(max_length=255, blank=True)
    dkim = models.JSONField(default=list, blank=True)  # [{"domain", "selector", "result"}]
    spf = models.JSONField(default=list, blank=True)  # [{"domain", "scope", "result"}]
    reasons = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.source_ip}: {self.count}"

    @property
    def aligned(self) -> bool:
        return self.dkim_aligned or self.spf_aligned


class FailureReport(models.Model):
    """An RFC 6591 failure sample, minimised: domains and authentication results, the subject,
    no local parts and no body. Deleted after MAILHOST_REPORT_FAILURE_RETENTION_DAYS."""

    domain = models.ForeignKey(Domain, on_delete=models.CASCADE, related_name="dmarc_failures")
    sha256 = models.CharField(max_length=64)
    feedback_type = models.CharField(max_length=32, blank=True)
    auth_failure = models.CharField(max_length=32, blank=True)
    source_ip = models.GenericIPAddressField(null=True, blank=True)
    arrival = models.DateTimeField(null=True, blank=True)
    reporter = models.CharField(max_length=120, blank=True)
    header_from_domain = models.CharField(max_length=253, blank=True)
    envelope_from_domain = models.CharField(max_length=253, blank=True)
    dkim_domain = models.CharField(max_length=253, blank=True)
    authentication_results = models.TextField(blank=True)
    subject = models.CharField(max_length=200, blank=True)
    received_at = models.DateTimeField()
    expires_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-received_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["domain", "sha256"], name="dmarc_failure_once"),
        ]

    def __str__(self) -> str:
        return f"{self.domain.name}: {self.auth_failure} from {self.source_ip}"


class TlsReport(models.Model):
    domain = models.ForeignKey(Domain, on_delete=models.CASCADE, related_name="tls_reports")
    org_name = models.CharField(max_length=255)
    contact = models.CharField(max_length=255, blank=True)
    report_id = models.CharField(max_length=255)
    begin = models.DateTimeField()
    end = models.DateTimeField(db_index=True)
    successes = models.PositiveBigIntegerField(default=0)
    failures = models.PositiveBigIntegerField(default=0)
    received_at = models.DateTimeField()

    class Meta:
        ordering = ["-end", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["domain", "org_name", "report_id"],
                                    name="tls_report_once"),
        ]

    def __str__(self) -> str:
        return f"{self.domain.name}: {self.org_name} {self.report_id}"


class TlsPolicyResult(models.Model):
    report = models.ForeignKey(TlsReport, on_delete=models.CASCADE, related_name="policies")
    policy_type = models.CharField(max_length=32)
    policy_domain = models.CharField(max_length=253)
    mx_host = models.CharField(max_length=255, blank=True)
    successes = models.PositiveIntegerField()
    failures = models.PositiveIntegerField()
    failure_details = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.policy_type} {self.policy_domain}"


class SourceName(models.Model):
    """The reverse name of a sending source seen in a report (PTR), and whether it is
    forward-confirmed (the name's addresses include the IP). Looked up after the report was
    stored, never inside a request or transaction (reports.rdns)."""

    ip = models.GenericIPAddressField(unique=True)
    name = models.CharField(max_length=253, blank=True)
    confirmed = models.BooleanField(default=False)
    checked_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.ip} {self.name or '(no name)'}"
