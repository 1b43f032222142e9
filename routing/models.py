"""Outbound routing's rows: relays (smarthosts) per domain or organisation; the outbound TLS
policy per recipient domain and the TLS failures the nodes recorded
(mailhost/backend/tls_policy.py, events.py); the install's SRS secrets and ARC key for
forwarded mail (mailhost/backend/forwarding.py)."""

from django.db import models
from django.db.models import Q
from django.utils import timezone

from mailboxes.models import Domain
from mailhost.backend.tls_policy import POLICY_LEVELS, POLICY_TYPES, RESULT_TYPES
from tenants.models import Organisation


class TlsMode(models.TextChoices):
    REQUIRED = "required", "Required (encrypted; certificate not checked)"
    VERIFIED = "verified", "Required and verified (certificate valid for the host)"
    OPPORTUNISTIC = "opportunistic", "Opportunistic (plain if not offered; no login then)"


class Relay(models.Model):
    """A smarthost for one domain, or (domain empty) for every domain of the organisation that
    has none of its own. The password is Fernet-encrypted like DKIM keys (mailhost.crypto) and
    reaches the node only in a table Postfix alone reads."""

    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE,
                                     related_name="relays")
    domain = models.ForeignKey(Domain, on_delete=models.CASCADE, null=True, blank=True,
                               related_name="relays")
    host = models.CharField(max_length=253, help_text="A host name or IP address, lower case.")
    port = models.PositiveIntegerField(default=587)
    tls_mode = models.CharField(max_length=16, choices=TlsMode.choices, default=TlsMode.REQUIRED)
    username = models.CharField(max_length=255, blank=True)
    password_encrypted = models.TextField(blank=True, help_text="Fernet-encrypted.")
    spf_include = models.CharField(
        max_length=253, blank=True,
        help_text="The relay's SPF include (e.g. spf.relay.example): the generated SPF record "
                  "includes it, and the portal warns while the published one does not.")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["organisation_id", "domain__name", "id"]
        constraints = [
            models.UniqueConstraint(fields=["domain"], condition=Q(domain__isnull=False),
                                    name="relay_one_per_domain"),
            models.UniqueConstraint(fields=["organisation"], condition=Q(domain__isnull=True),
                                    name="relay_one_per_organisation"),
            models.CheckConstraint(condition=Q(tls_mode__in=TlsMode.values),
                                   name="relay_tls_mode_valid"),
            models.CheckConstraint(condition=Q(port__gte=1) & Q(port__lte=65535),
                                   name="relay_port_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.scope} → {self.host}:{self.port}"

    @property
    def scope(self) -> str:
        return self.domain.name if self.domain_id else "organisation"


class TlsPolicy(models.Model):
    """What the nodes demand when they send to one recipient domain, above MTA-STS and the
    install-wide default. Install-wide (Postfix applies it to every sender): staff only."""

    Level = models.TextChoices("Level", [(v.upper().replace("-", "_"), v) for v in POLICY_LEVELS])

    domain = models.CharField(max_length=253, unique=True)
    level = models.CharField(max_length=10, choices=Level.choices)
    note = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["domain"]
        constraints = [
            models.CheckConstraint(condition=models.Q(level__in=POLICY_LEVELS),
                                   name="routing_tlspolicy_level_known"),
        ]

    def __str__(self) -> str:
        return f"{self.domain} {self.level}"


class TlsFailure(models.Model):
    """One failed TLS attempt toward a recipient domain, as a node's event agent recorded it:
    what an RFC 8460 report's failure-details are counted from."""

    node_name = models.CharField(max_length=100)
    node_event_id = models.BigIntegerField()
    at = models.DateTimeField()
    domain = models.CharField(max_length=253)
    mx_host = models.CharField(max_length=253)
    mx_ip = models.CharField(max_length=64)
    policy_type = models.CharField(max_length=20, choices=[(v, v) for v in POLICY_TYPES])
    policy_strings = models.JSONField(default=list)
    result_type = models.CharField(max_length=40, choices=[(v, v) for v in RESULT_TYPES])
    detail = models.TextField(blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["node_name", "node_event_id"],
                                    name="routing_tlsfailure_node_event"),
        ]
        indexes = [models.Index(fields=["domain", "-at"], name="routing_tlsfail_domain_at")]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.domain} {self.result_type}"


class TlsSessionCount(models.Model):
    """TLS sessions that succeeded toward a domain on one day, per node (the node counts)."""

    node_name = models.CharField(max_length=100)
    day = models.DateField()
    domain = models.CharField(max_length=253)
    successes = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["node_name", "day", "domain"],
                                    name="routing_tlssessions_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.domain} {self.successes}"


class SrsSecret(models.Model):
    """A postsrsd secret, encrypted at rest (mailhost.crypto, like DKIM keys). The signing one
    makes new SRS addresses; a replaced one still verifies bounces until `superseded_at` +
    MAILHOST_SRS_GRACE_DAYS, then leaves the node's secrets file and is deleted."""

    secret_encrypted = models.TextField()
    signing = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)
    superseded_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "SRS secret"
        constraints = [
            models.UniqueConstraint(fields=["signing"], condition=Q(signing=True),
                                    name="routing_one_signing_srs_secret"),
            models.CheckConstraint(condition=Q(signing=True) | Q(superseded_at__isnull=False),
                                   name="routing_srs_superseded_when_not_signing"),
        ]

    def __str__(self) -> str:
        state = "signing" if self.signing else f"verifies only since {self.superseded_at:%Y-%m-%d}"
        return f"SRS secret of {self.created_at:%Y-%m-%d %H:%M} ({state})"


class ArcKey(models.Model):
    """The install's ARC sealing key (RSA-2048), encrypted at rest; its public half is
    published at <selector>._domainkey.<domain> in every domain's record set."""

    domain = models.CharField(max_length=253)
    selector = models.CharField(max_length=63)
    private_key_encrypted = models.TextField()
    public_key = models.TextField()
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "ARC key"
        constraints = [
            models.UniqueConstraint(fields=["active"], condition=Q(active=True),
                                    name="routing_one_active_arc_key"),
            models.UniqueConstraint(fields=["domain", "selector"],
                                    name="routing_arc_key_selector_unique"),
        ]

    def __str__(self) -> str:
        return f"ARC key {self.selector}._domainkey.{self.domain}"

    @property
    def dns_name(self) -> str:
        return f"{self.selector}._domainkey.{self.domain}"


class TlsReportState(models.TextChoices):
    SENDING = "sending", "Sending"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"


class TlsReport(models.Model):
    """One outgoing RFC 8460 report: a recipient domain's day, to one of the `rua` URIs it
    publishes. Unique per (domain, day, rua), so a rerun never sends it twice; a failure keeps
    its reason and is retried by the next runs (routing.services.tls_reports)."""

    domain = models.CharField(max_length=253)
    day = models.DateField()
    rua = models.CharField(max_length=500)
    report_id = models.CharField(max_length=200)
    state = models.CharField(max_length=10, choices=TlsReportState.choices,
                             default=TlsReportState.SENDING)
    attempts = models.PositiveIntegerField(default=0)
    failure_sessions = models.PositiveIntegerField(default=0)
    success_sessions = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-day", "domain", "rua"]
        constraints = [
            models.UniqueConstraint(fields=["domain", "day", "rua"],
                                    name="routing_tlsreport_once"),
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.domain} → {self.rua} ({self.state})"
