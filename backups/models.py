"""Backup keys (one per organisation, one for the install, each wrapped by the install key)
and the record of every backup, restore, verify and prune run."""

import uuid

from django.db import models
from django.db.models import Q
from django.utils import timezone

from tenants.models import Organisation


class BackupKey(models.Model):
    """A 32-byte AES key, stored wrapped (Fernet) by the install key, DKIM_ENCRYPTION_KEY.
    `organisation` null: the install backup key (portal database, secrets, node state)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organisation = models.OneToOneField(
        Organisation, null=True, blank=True, on_delete=models.CASCADE, related_name="backup_key"
    )
    install = models.BooleanField(default=False)
    wrapped = models.TextField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["install"], condition=Q(install=True), name="backup_key_one_install_key"
            ),
            models.CheckConstraint(
                condition=Q(install=True, organisation__isnull=True)
                | Q(install=False, organisation__isnull=False),
                name="backup_key_install_or_organisation",
            ),
        ]

    def __str__(self) -> str:
        return f"backup key {self.id} ({self.organisation or 'install'})"


class RunKind(models.TextChoices):
    BACKUP = "backup", "Backup"
    RESTORE = "restore", "Restore"
    VERIFY = "verify", "Verify"
    PRUNE = "prune", "Prune"


class RunStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    OK = "ok", "OK"
    FAILED = "failed", "Failed"


class BackupRun(models.Model):
    """One run: what it covered (scope "install", "organisation:<slug>", "domain:<name>",
    "mailbox:<address>"), where, how much, and how it ended."""

    kind = models.CharField(max_length=16, choices=RunKind.choices, default=RunKind.BACKUP)
    scope = models.CharField(max_length=300)
    target = models.CharField(max_length=300)
    snapshot = models.CharField(max_length=40, blank=True)
    status = models.CharField(max_length=16, choices=RunStatus.choices, default=RunStatus.QUEUED)
    started_at = models.DateTimeField(default=timezone.now, db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    messages = models.PositiveIntegerField(default=0)
    objects_uploaded = models.PositiveIntegerField(default=0)
    bytes = models.PositiveBigIntegerField(default=0, help_text="Bytes written to the target.")
    error = models.TextField(blank=True)
    requested_by = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["-started_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.kind} {self.scope} {self.started_at:%Y-%m-%d %H:%M} {self.status}"
