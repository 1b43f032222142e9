import secrets
import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from mailhost.names import domain_for_display
from nodes.models import MailNode
from tenants.models import Organisation


class DomainStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    DISABLED = "disabled", "Disabled"


class VerificationMethod(models.TextChoices):
    DNS = "dns", "DNS record"
    STAFF = "staff", "Marked by staff"
    SPECIAL_USE = "special-use", "Special-use name (.test, .example, .invalid, .localhost)"
    PARENT = "parent", "Under a domain the organisation verified"
    EXISTING = "existing", "Hosted before ownership verification"


def new_verification_token() -> str:
    """What the owner publishes to prove control of the domain's DNS: random, per claim."""
    return secrets.token_hex(16)


class Domain(models.Model):
    """An organisation's claim on a domain name. Several organisations may claim one name, but
    only the claim whose ownership is verified (DNS token, or staff) reaches a mail node:
    routing, signing and mailboxes wait for `verified_at`."""

    organisation = models.ForeignKey(Organisation, on_delete=models.PROTECT, related_name="domains")
    node = models.ForeignKey(MailNode, on_delete=models.PROTECT, related_name="domains")
    name = models.CharField(max_length=253, db_index=True, help_text="IDNA (A-label), lower case.")
    verification_token = models.CharField(max_length=64, default=new_verification_token)
    verified_at = models.DateTimeField(null=True, blank=True)
    verification_method = models.CharField(
        max_length=12, choices=VerificationMethod.choices, blank=True
    )
    status = models.CharField(max_length=10, choices=DomainStatus.choices, default="active")
    max_mailboxes = models.PositiveIntegerField(null=True, blank=True, help_text="Empty: no limit.")
    default_quota_mb = models.PositiveIntegerField(default=settings.MAILHOST_DEFAULT_QUOTA_MB)
    # Where postmaster@ and abuse@ of the domain go (unless a mailbox or alias of the same
    # address exists): a mailbox or alias of the organisation. Empty: automatic (the first
    # admin's mailbox if it is hosted here, else MAILHOST_OPERATOR_MAILBOX).
    role_target = models.CharField(max_length=254, blank=True)
    revision = models.BigIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=DomainStatus.values), name="domain_status_valid"
            ),
            models.CheckConstraint(
                condition=~Q(name__contains="/") & ~Q(name__contains=" ") & ~Q(name=""),
                name="domain_name_no_separators",
            ),
            # One verified owner per name: the one whose rows reach the mail nodes.
            models.UniqueConstraint(
                fields=["name"],
                condition=Q(verified_at__isnull=False),
                name="domain_one_verified_owner",
            ),
            models.UniqueConstraint(
                fields=["organisation", "name"], name="domain_unique_per_organisation"
            ),
            models.CheckConstraint(
                condition=Q(verified_at__isnull=True, verification_method="")
                | (Q(verified_at__isnull=False) & ~Q(verification_method="")),
                name="domain_verified_with_a_method",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def display_name(self) -> str:
        return domain_for_display(self.name)

    @property
    def is_verified(self) -> bool:
        return self.verified_at is not None


class MailboxStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    SUSPENDED = "suspended", "Suspended (receives, cannot log in)"
    DISABLED = "disabled", "Disabled (no login, mail refused)"


class Mailbox(models.Model):
    domain = models.ForeignKey(Domain, on_delete=models.PROTECT, related_name="mailboxes")
    local_part = models.CharField(max_length=64)
    display_name = models.CharField(max_length=200, blank=True)
    password_hash = models.CharField(max_length=200)
    quota_mb = models.PositiveIntegerField()
    status = models.CharField(max_length=10, choices=MailboxStatus.choices, default="active")
    # The maildir lives under this id, never under the address, so a rename moves nothing.
    home_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    deleted_at = models.DateTimeField(null=True, blank=True)
    # What the mailbox holder sets in /mailbox/; the reconciler renders it to a Sieve script.
    forward_to = models.JSONField(default=list, blank=True, help_text="Normalised addresses.")
    forward_keep_copy = models.BooleanField(default=True)
    vacation_enabled = models.BooleanField(default=False)
    vacation_subject = models.CharField(max_length=200, blank=True)
    vacation_body = models.TextField(blank=True)
    vacation_start = models.DateField(null=True, blank=True)
    vacation_end = models.DateField(null=True, blank=True)
    revision = models.BigIntegerField(default=0)
    # Storage in use as the node last reported it (a periodic task reads Dovecot's quota).
    used_bytes = models.BigIntegerField(null=True, blank=True)
    usage_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["domain__name", "local_part"]
        constraints = [
            models.UniqueConstraint(
                fields=["domain", "local_part"],
                condition=Q(deleted_at__isnull=True),
                name="mailbox_unique_live_address",
            ),
            models.CheckConstraint(
                condition=Q(status__in=MailboxStatus.values), name="mailbox_status_valid"
            ),
            models.CheckConstraint(
                condition=~Q(local_part="") & ~Q(local_part__contains="@"),
                name="mailbox_local_part_plain",
            ),
            models.CheckConstraint(
                condition=Q(password_hash__startswith="{"), name="mailbox_password_is_scheme_hash"
            ),
            models.CheckConstraint(
                condition=Q(vacation_start__isnull=True)
                | Q(vacation_end__isnull=True)
                | Q(vacation_end__gte=models.F("vacation_start")),
                name="mailbox_vacation_end_after_start",
            ),
        ]
        indexes = [models.Index(fields=["domain", "status"], name="mailbox_domain_status")]
        verbose_name_plural = "mailboxes"

    def __str__(self) -> str:
        return self.address

    @property
    def address(self) -> str:
        return f"{self.local_part}@{self.domain.name}"

    @property
    def is_deleted(self) -> bool:
        return self.deleted_at is not None

    @property
    def used_mb(self) -> float | None:
        return None if self.used_bytes is None else round(self.used_bytes / 1024 / 1024, 1)

    @property
    def used_percent(self) -> int | None:
        if self.used_bytes is None or not self.quota_mb:
            return None
        return min(100, round(100 * self.used_bytes / (self.quota_mb * 1024 * 1024)))


class Alias(models.Model):
    """An address that forwards to one or more destinations; an empty local part is a catch-all."""

    domain = models.ForeignKey(Domain, on_delete=models.PROTECT, related_name="aliases")
    local_part = models.CharField(max_length=64, blank=True, help_text="Empty: catch-all.")
    destinations = models.JSONField(help_text="Normalised addresses, internal or external.")
    active = models.BooleanField(default=True)
    revision = models.BigIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["domain__name", "local_part"]
        constraints = [
            models.UniqueConstraint(fields=["domain", "local_part"], name="alias_unique_address"),
            models.CheckConstraint(
                condition=~Q(local_part__contains="@"), name="alias_local_part_plain"
            ),
        ]
        verbose_name_plural = "aliases"

    def __str__(self) -> str:
        return self.address

    @property
    def is_catch_all(self) -> bool:
        return self.local_part == ""

    @property
    def address(self) -> str:
        return f"{self.local_part}@{self.domain.name}"


class AppPassword(models.Model):
    """An extra password for one device (a phone, a mail client): revocable without changing the
    mailbox password. Only a Dovecot-verifiable hash is stored; the password is shown once."""

    mailbox = models.ForeignKey(Mailbox, on_delete=models.CASCADE, related_name="app_passwords")
    name = models.CharField(max_length=100, help_text="The device it is for.")
    password_hash = models.CharField(max_length=200)
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(password_hash__startswith="{"), name="app_password_is_scheme_hash"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.mailbox_id})"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class ImportStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class MailboxImport(models.Model):
    """A bulk CSV import of mailboxes, processed by a task that records progress as it goes.

    The uploaded CSV may hold passwords, so it is kept encrypted and dropped once processed;
    generated passwords are kept encrypted until the operator downloads them, once.
    """

    organisation = models.ForeignKey(
        Organisation, on_delete=models.CASCADE, related_name="mailbox_imports"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_ip = models.GenericIPAddressField(null=True, blank=True)
    filename = models.CharField(max_length=200, blank=True)
    status = models.CharField(max_length=10, choices=ImportStatus.choices, default="queued")
    total = models.PositiveIntegerField(default=0)
    processed = models.PositiveIntegerField(default=0)
    created = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    errors = models.JSONField(default=list, blank=True, help_text="[{line, address, error}]")
    source_encrypted = models.TextField(blank=True)
    generated_encrypted = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"import {self.pk} ({self.status})"

    @property
    def percent(self) -> int:
        return 100 if not self.total else int(100 * self.processed / self.total)

    @property
    def is_finished(self) -> bool:
        return self.status in (ImportStatus.DONE, ImportStatus.FAILED)
