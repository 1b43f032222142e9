"""Relays (smarthosts): where an organisation's or a domain's outbound mail is handed over."""

from django.db import models
from django.db.models import Q
from django.utils import timezone

from mailboxes.models import Domain
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
