from django.db import models
from django.db.models import Q
from django.utils import timezone

from mailboxes.models import Domain


class DkimKeyState(models.TextChoices):
    # Rotation: pending → published (seen in DNS) → active (signing) → retiring (still published
    # for the grace period, no longer signing) → retired (removed from DNS).
    PENDING = "pending", "Generated, waiting to be published"
    PUBLISHED = "published", "Published, not yet signing"
    ACTIVE = "active", "Signing"
    RETIRING = "retiring", "Published for the grace period"
    RETIRED = "retired", "Retired"


PUBLISHED_STATES = (DkimKeyState.PUBLISHED, DkimKeyState.ACTIVE, DkimKeyState.RETIRING)


class DkimKey(models.Model):
    domain = models.ForeignKey(Domain, on_delete=models.CASCADE, related_name="dkim_keys")
    selector = models.CharField(max_length=63)
    algorithm = models.CharField(max_length=10, default="rsa")
    private_key_encrypted = models.TextField(help_text="PEM, Fernet-encrypted.")
    public_key = models.TextField(help_text="Base64 DER, as published in p=.")
    state = models.CharField(max_length=10, choices=DkimKeyState.choices, default="pending")
    created_at = models.DateTimeField(default=timezone.now)
    activated_at = models.DateTimeField(null=True, blank=True)
    retiring_at = models.DateTimeField(null=True, blank=True)
    retired_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["domain__name", "-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["domain", "selector"], name="dkim_unique_selector"),
            models.UniqueConstraint(
                fields=["domain"], condition=Q(state="active"), name="dkim_one_active_per_domain"
            ),
            models.CheckConstraint(
                condition=Q(state__in=DkimKeyState.values), name="dkim_state_valid"
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
        return f"v=DKIM1; k={self.algorithm}; p={self.public_key}"
