"""Outbound routing's rows. Forwarding (SRS, ARC): the install's SRS secrets and ARC key."""

from django.db import models
from django.db.models import Q
from django.utils import timezone


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
