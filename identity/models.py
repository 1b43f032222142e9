from django.db import models
from django.db.models import Q
from django.utils import timezone

from identity import dkim
from mailboxes.models import Domain


class DkimKeyState(models.TextChoices):
    # Rotation: pending → published (seen in DNS) → active (signing) → retiring (still published
    # for the grace period, no longer signing) → retired (removed from DNS).
    PENDING = "pending", "Generated, waiting to be published"
    PUBLISHED = "published", "Published, not yet signing"
    ACTIVE = "active", "Signing"
    RETIRING = "retiring", "Published for the grace period"
    RETIRED = "retired", "Retired"


class DkimAlgorithm(models.TextChoices):
    RSA = "rsa", "RSA-2048"
    ED25519 = "ed25519", "Ed25519"


# Keys whose public half belongs in DNS (pending ones are waiting to be put there).
DNS_STATES = (
    DkimKeyState.PENDING,
    DkimKeyState.PUBLISHED,
    DkimKeyState.ACTIVE,
    DkimKeyState.RETIRING,
)
IN_FLIGHT_STATES = (DkimKeyState.PENDING, DkimKeyState.PUBLISHED)
PUBLISHED_STATES = (DkimKeyState.PUBLISHED, DkimKeyState.ACTIVE, DkimKeyState.RETIRING)


class DkimKey(models.Model):
    domain = models.ForeignKey(Domain, on_delete=models.CASCADE, related_name="dkim_keys")
    selector = models.CharField(max_length=63)
    algorithm = models.CharField(max_length=10, choices=DkimAlgorithm.choices, default="rsa")
    private_key_encrypted = models.TextField(help_text="PEM, Fernet-encrypted.")
    public_key = models.TextField(help_text="Base64 DER, as published in p=.")
    state = models.CharField(max_length=10, choices=DkimKeyState.choices, default="pending")
    created_at = models.DateTimeField(default=timezone.now)
    published_at = models.DateTimeField(null=True, blank=True, help_text="First seen in DNS.")
    activated_at = models.DateTimeField(null=True, blank=True)
    retiring_at = models.DateTimeField(null=True, blank=True)
    retired_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["domain__name", "-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["domain", "selector"], name="dkim_unique_selector"),
            # One signing key per algorithm: RSA always, Ed25519 alongside when enabled.
            models.UniqueConstraint(
                fields=["domain", "algorithm"],
                condition=Q(state="active"),
                name="dkim_one_active_per_algorithm",
            ),
            models.CheckConstraint(
                condition=Q(state__in=DkimKeyState.values), name="dkim_state_valid"
            ),
            models.CheckConstraint(
                condition=Q(algorithm__in=DkimAlgorithm.values), name="dkim_algorithm_valid"
            ),
        ]
        verbose_name = "DKIM key"

    def __str__(self) -> str:
        return f"{self.selector}._domainkey.{self.domain.name} ({self.state})"

    @property
    def dns_name(self) -> str:
        return f"{self.selector}._domainkey.{self.domain.name}"

    @property
    def txt_value(self) -> str:
        return dkim.txt_value(self.algorithm, self.public_key)


class DmarcPolicy(models.TextChoices):
    NONE = "none", "none (monitor)"
    QUARANTINE = "quarantine", "quarantine"
    REJECT = "reject", "reject"


class Alignment(models.TextChoices):
    RELAXED = "r", "relaxed"
    STRICT = "s", "strict"


class MtaStsMode(models.TextChoices):
    TESTING = "testing", "testing (report only)"
    ENFORCE = "enforce", "enforce"
    NONE = "none", "none (withdrawn)"


class TsigAlgorithm(models.TextChoices):
    HMAC_SHA256 = "hmac-sha256", "HMAC-SHA256"
    HMAC_SHA512 = "hmac-sha512", "HMAC-SHA512"


MTASTS_MAX_AGE_LIMIT = 31557600  # RFC 8461 3.2: at most one year


class DomainPosture(models.Model):
    """What a domain asks receivers to do with its mail, and how its records get published.

    Created with the defaults from settings the first time it is written or checked; reads of a
    domain without one see those defaults (selectors build an unsaved instance).
    """

    domain = models.OneToOneField(Domain, on_delete=models.CASCADE, related_name="posture")
    dmarc_policy = models.CharField(
        max_length=10, choices=DmarcPolicy.choices, default=DmarcPolicy.NONE
    )
    dmarc_pct = models.PositiveSmallIntegerField(default=100)
    dmarc_rua = models.JSONField(default=list, blank=True, help_text="mailto: URIs.")
    dmarc_ruf = models.JSONField(default=list, blank=True, help_text="mailto: URIs.")
    dmarc_adkim = models.CharField(max_length=1, choices=Alignment.choices, default="r")
    dmarc_aspf = models.CharField(max_length=1, choices=Alignment.choices, default="r")
    dmarc_changed_at = models.DateTimeField(null=True, blank=True)
    mtasts_mode = models.CharField(
        max_length=10, choices=MtaStsMode.choices, default=MtaStsMode.TESTING
    )
    mtasts_max_age = models.PositiveIntegerField(default=7 * 86400)
    mtasts_mx = models.JSONField(default=list, blank=True, help_text="Empty: the mail host.")
    tlsrpt_rua = models.JSONField(default=list, blank=True, help_text="mailto: or https: URIs.")
    bimi_svg = models.BinaryField(null=True, blank=True, help_text="Validated SVG Tiny PS.")
    bimi_sha256 = models.CharField(max_length=64, blank=True)
    bimi_uploaded_at = models.DateTimeField(null=True, blank=True)
    dkim_ed25519 = models.BooleanField(default=False, help_text="Sign with Ed25519 too.")
    auto_publish = models.BooleanField(default=False, help_text="RFC 2136 update with TSIG.")
    publish_server = models.CharField(max_length=255, blank=True, help_text="IP address.")
    publish_port = models.PositiveIntegerField(default=53)
    publish_zone = models.CharField(max_length=253, blank=True, help_text="Empty: the domain.")
    tsig_key_name = models.CharField(max_length=253, blank=True)
    tsig_algorithm = models.CharField(
        max_length=20, choices=TsigAlgorithm.choices, default=TsigAlgorithm.HMAC_SHA256
    )
    tsig_secret_encrypted = models.TextField(blank=True, help_text="Base64, Fernet-encrypted.")
    last_published_at = models.DateTimeField(null=True, blank=True)
    last_publish_error = models.TextField(blank=True)
    next_check_at = models.DateTimeField(null=True, blank=True, db_index=True)
    last_checked_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(dmarc_pct__lte=100), name="posture_pct_range"),
            models.CheckConstraint(
                condition=Q(dmarc_policy__in=DmarcPolicy.values), name="posture_dmarc_valid"
            ),
            models.CheckConstraint(
                condition=Q(dmarc_adkim__in=Alignment.values, dmarc_aspf__in=Alignment.values),
                name="posture_alignment_valid",
            ),
            models.CheckConstraint(
                condition=Q(mtasts_mode__in=MtaStsMode.values), name="posture_mtasts_mode_valid"
            ),
            models.CheckConstraint(
                condition=Q(mtasts_max_age__lte=MTASTS_MAX_AGE_LIMIT),
                name="posture_mtasts_max_age_range",
            ),
        ]
        verbose_name = "DNS posture"

    def __str__(self) -> str:
        return f"DNS posture of {self.domain.name}"


class CheckStatus(models.TextChoices):
    OK = "ok", "OK"
    WRONG = "wrong", "Wrong"
    UNKNOWN = "unknown", "Unknown (no answer)"


class DnsCheck(models.Model):
    """The latest verdict on one expected record of a domain."""

    domain = models.ForeignKey(Domain, on_delete=models.CASCADE, related_name="dns_checks")
    key = models.CharField(max_length=100, help_text="Which expected record: mx, spf, dkim:<sel>…")
    name = models.CharField(max_length=255)
    rtype = models.CharField(max_length=10)
    status = models.CharField(max_length=7, choices=CheckStatus.choices)
    detail = models.TextField(blank=True)
    found = models.JSONField(default=list, blank=True)
    checked_at = models.DateTimeField()
    changed_at = models.DateTimeField(help_text="When the status last changed.")

    class Meta:
        ordering = ["domain__name", "key"]
        constraints = [
            models.UniqueConstraint(fields=["domain", "key"], name="dnscheck_unique_key"),
            models.CheckConstraint(
                condition=Q(status__in=CheckStatus.values), name="dnscheck_status_valid"
            ),
        ]
        verbose_name = "DNS check"

    def __str__(self) -> str:
        return f"{self.domain.name} {self.key}: {self.status}"


class DnsCheckHistory(models.Model):
    """A verdict that differed from the one before it: the history, without the repetitions."""

    domain = models.ForeignKey(Domain, on_delete=models.CASCADE, related_name="dns_history")
    key = models.CharField(max_length=100)
    name = models.CharField(max_length=255)
    rtype = models.CharField(max_length=10)
    status = models.CharField(max_length=7, choices=CheckStatus.choices)
    previous_status = models.CharField(max_length=7, blank=True)
    detail = models.TextField(blank=True)
    found = models.JSONField(default=list, blank=True)
    checked_at = models.DateTimeField()

    class Meta:
        ordering = ["-checked_at", "-id"]
        indexes = [models.Index(fields=["domain", "-checked_at"], name="dnshistory_domain_time")]
        verbose_name = "DNS check history entry"
        verbose_name_plural = "DNS check history"

    def __str__(self) -> str:
        return f"{self.checked_at:%Y-%m-%d %H:%M} {self.domain.name} {self.key}: {self.status}"


# --- inbound authentication policy (services: identity/inbound.py) ----------------------------


class InboundPolicy(models.Model):
    """What a domain demands of the mail it receives, on top of what each sender's own DMARC
    record asks for. Absent: the node's defaults (no extra requirement, greylisting on, the
    MAILHOST_INBOUND_* thresholds)."""

    domain = models.OneToOneField(Domain, on_delete=models.CASCADE, related_name="inbound_policy")
    require_spf = models.BooleanField(default=False, help_text="Refuse mail without SPF pass.")
    require_dkim = models.BooleanField(default=False, help_text="Refuse mail without DKIM pass.")
    require_dmarc = models.BooleanField(default=False, help_text="Refuse mail without DMARC pass.")
    greylisting = models.BooleanField(default=True)
    junk_score = models.DecimalField(max_digits=5, decimal_places=2, null=True, blank=True,
                                     help_text="Spam score filed into Junk; empty: default.")
    reject_score = models.DecimalField(max_digits=5, decimal_places=2, null=True, blank=True,
                                       help_text="Spam score refused at SMTP; empty: default.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(junk_score__isnull=True) | Q(junk_score__gt=0),
                name="inbound_junk_positive",
            ),
            models.CheckConstraint(
                condition=Q(junk_score__isnull=True) | Q(reject_score__isnull=True)
                | Q(junk_score__lt=models.F("reject_score")),
                name="inbound_junk_below_reject",
            ),
        ]
        verbose_name = "inbound policy"
        verbose_name_plural = "inbound policies"

    def __str__(self) -> str:
        return f"Inbound policy of {self.domain.name}"


class SenderRuleKind(models.TextChoices):
    ALLOW = "allow", "Allow"
    BLOCK = "block", "Block"


class InboundSenderRule(models.Model):
    """Allow or block a sender (address or @domain) for a whole domain or one of its mailboxes.
    An allowed sender is never greylisted nor junked by score; DMARC enforcement still applies
    (a sender address alone is trivially forged)."""

    domain = models.ForeignKey(Domain, on_delete=models.CASCADE, related_name="sender_rules")
    mailbox = models.CharField(max_length=254, blank=True, help_text="Empty: the whole domain.")
    kind = models.CharField(max_length=5, choices=SenderRuleKind.choices)
    sender = models.CharField(max_length=254, help_text="user@example.com or @example.com")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["domain__name", "mailbox", "sender"]
        constraints = [
            models.UniqueConstraint(fields=["domain", "mailbox", "sender"],
                                    name="inbound_rule_unique"),
            models.CheckConstraint(condition=Q(kind__in=SenderRuleKind.values),
                                   name="inbound_rule_kind_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.sender} → {self.mailbox or self.domain.name}"


class InboundFlow(models.Model):
    """Mail-flow counters collected from a node: messages per day, recipient domain, outcome."""

    node = models.ForeignKey("nodes.MailNode", on_delete=models.CASCADE,
                             related_name="inbound_flow")
    day = models.DateField()
    domain = models.CharField(max_length=253)
    outcome = models.CharField(max_length=20)
    count = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["node", "day", "domain", "outcome"],
                                    name="inbound_flow_unique"),
        ]
        indexes = [models.Index(fields=["domain", "day"], name="inbound_flow_domain_day")]

    def __str__(self) -> str:
        return f"{self.day} {self.domain} {self.outcome}: {self.count}"


class NodeInboundStatus(models.Model):
    """What a node's inbound guard last reported: greylisting's circuit breaker."""

    node = models.OneToOneField("nodes.MailNode", on_delete=models.CASCADE,
                                related_name="inbound_status")
    breaker_open = models.BooleanField(default=False)
    reasons = models.JSONField(default=list, blank=True)
    open_since = models.DateTimeField(null=True, blank=True)
    checked_at = models.DateTimeField(null=True, blank=True)
    collected_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.node.name}: breaker {'open' if self.breaker_open else 'closed'}"
