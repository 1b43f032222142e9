"""Outbound messages, their recipients and what became of each (delivery events)."""

import uuid

from django.db import models
from django.db.models import Q
from django.utils import timezone

from mailboxes.models import Domain
from tenants.models import Organisation


class RecipientKind(models.TextChoices):
    TO = "to"
    CC = "cc"
    BCC = "bcc"
    ENVELOPE = "env"  # a submitted message's envelope recipient (To, Cc or Bcc: not known)


class Via(models.TextChoices):
    API = "api"  # the send API (REST or GraphQL)
    SMTP = "smtp"  # SMTP submission with a login (a mailbox, an app password, an app sender)
    SENDMAIL = "sendmail"  # sendmail on the mail host


class RecipientStatus(models.TextChoices):
    QUEUED = "queued"  # handed to the node's Postfix, no attempt seen yet
    DEFERRED = "deferred"  # a temporary failure; Postfix retries
    DELIVERED = "delivered"
    BOUNCED = "bounced"
    EXPIRED = "expired"  # deferred until the queue lifetime ran out
    SUPPRESSED = "suppressed"  # on the suppression list: never sent


class Message(models.Model):
    """One message the send API accepted and injected into its domain's node.

    `id` is public (the API's message id) and is the VERP tag of the envelope sender,
    `bounces+<id hex>@<domain>`, so a bounce names its message without the portal."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organisation = models.ForeignKey(
        Organisation, on_delete=models.PROTECT, related_name="messages"
    )
    domain = models.ForeignKey(Domain, on_delete=models.PROTECT, related_name="messages")
    sender = models.CharField(max_length=254, help_text="The From address.")
    subject = models.CharField(max_length=998, blank=True)
    message_id = models.CharField(max_length=300, help_text="The Message-ID header field.")
    size = models.PositiveIntegerField(help_text="Bytes of the message as injected.")
    metadata = models.JSONField(default=dict, blank=True)
    via = models.CharField(max_length=8, choices=Via.choices, default=Via.API)
    login = models.CharField(max_length=254, blank=True,
                             help_text="Who submitted it (SMTP login, or the local uid).")
    queue_id = models.CharField(max_length=32, blank=True, help_text="The node's Postfix queue id.")
    # The client's Idempotency-Key and a digest of what it asked for: the same key with the same
    # request is this message again; the unique constraint decides between concurrent requests.
    idempotency_key = models.CharField(max_length=255, blank=True)
    fingerprint = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["organisation", "idempotency_key"],
                condition=~Q(idempotency_key=""),
                name="message_one_per_idempotency_key",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.id.hex} from {self.sender}"

    @property
    def return_path(self) -> str:
        return verp_address(self.id, self.domain.name)


def verp_address(message_id: uuid.UUID, domain: str) -> str:
    return f"bounces+{message_id.hex}@{domain}"


class Recipient(models.Model):
    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="recipients")
    address = models.CharField(max_length=254)
    kind = models.CharField(max_length=3, choices=RecipientKind.choices)
    status = models.CharField(
        max_length=10, choices=RecipientStatus.choices, default=RecipientStatus.QUEUED
    )
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["message", "address"], name="recipient_once"),
            models.CheckConstraint(
                condition=Q(kind__in=RecipientKind.values), name="recipient_kind_valid"
            ),
            models.CheckConstraint(
                condition=Q(status__in=RecipientStatus.values), name="recipient_status_valid"
            ),
        ]
        indexes = [models.Index(fields=["address"], name="recipient_address")]

    def __str__(self) -> str:
        return f"{self.address} ({self.status})"


class MessageTag(models.Model):
    """A tag the sender gave a message (rows, not JSON: the list filters by tag on any DB)."""

    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="tags")
    name = models.CharField(max_length=64)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["message", "name"], name="tag_once")]
        indexes = [models.Index(fields=["name"], name="message_tag_name")]

    def __str__(self) -> str:
        return self.name


def overall_status(statuses: set[str]) -> str:
    """A message's status from its recipients': in progress while any is, else the one final
    status they share, else "mixed" (some delivered, some bounced…)."""
    for pending in (RecipientStatus.QUEUED, RecipientStatus.DEFERRED):
        if pending in statuses:
            return pending
    return next(iter(statuses)) if len(statuses) == 1 else "mixed"


class DeliveryEvent(models.Model):
    """One thing that happened to a message on its node: an attempt (from Postfix's log) or a
    bounce that came back to its VERP address. Collected from the node's event agent."""

    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="events")
    recipient = models.CharField(max_length=254, blank=True, help_text="Empty: all of them.")
    status = models.CharField(max_length=10, choices=RecipientStatus.choices)
    at = models.DateTimeField(help_text="When the node saw it.")
    dsn = models.CharField(max_length=20, blank=True, help_text="Enhanced status code, 5.1.1.")
    reply = models.TextField(blank=True, help_text="The remote server's reply or diagnostic.")
    relay = models.CharField(max_length=300, blank=True, help_text="The remote host.")
    tls = models.CharField(max_length=300, blank=True, help_text="TLS used; 'none' for plain.")
    source = models.CharField(max_length=3, help_text="log (an attempt) or dsn (a bounce).")
    next_attempt_at = models.DateTimeField(
        null=True, blank=True, help_text="A deferral: when Postfix tries again, at the earliest.")
    node_name = models.CharField(max_length=50)
    node_event_id = models.BigIntegerField()

    class Meta:
        ordering = ["at", "id"]
        constraints = [
            # Collected at most once, whatever a retried collection reads again.
            models.UniqueConstraint(fields=["node_name", "node_event_id"],
                                    name="event_once_per_node"),
        ]

    def __str__(self) -> str:
        return f"{self.status} {self.recipient} at {self.at:%Y-%m-%d %H:%M:%S}"


class EventCursor(models.Model):
    """The last node event id the portal collected, per node."""

    node_name = models.CharField(max_length=50, unique=True)
    last_id = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.node_name}: {self.last_id}"


class SuppressionScope(models.TextChoices):
    ADDRESS = "address"
    DOMAIN = "domain"


class SuppressionReason(models.TextChoices):
    HARD_BOUNCE = "hard_bounce"
    MANUAL = "manual"


class Suppression(models.Model):
    """An address (or a whole domain) the organisation's mail must not go to: dropped before
    sending on the API, refused at RCPT on SMTP submission (the node's copy)."""

    organisation = models.ForeignKey(
        Organisation, on_delete=models.CASCADE, related_name="suppressions"
    )
    scope = models.CharField(max_length=7, choices=SuppressionScope.choices)
    value = models.CharField(max_length=254, help_text="The address, or the domain (A-label).")
    reason = models.CharField(max_length=11, choices=SuppressionReason.choices)
    detail = models.CharField(max_length=500, blank=True, help_text="The bounce, or a note.")
    message = models.ForeignKey(Message, on_delete=models.SET_NULL, null=True, blank=True,
                                related_name="+", help_text="The message that bounced.")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["value"]
        constraints = [
            models.UniqueConstraint(fields=["organisation", "value"], name="suppression_once"),
            models.CheckConstraint(condition=Q(scope__in=SuppressionScope.values),
                                   name="suppression_scope_valid"),
            models.CheckConstraint(condition=Q(reason__in=SuppressionReason.values),
                                   name="suppression_reason_valid"),
        ]

    def __str__(self) -> str:
        return self.value


class SendingQuota(models.Model):
    """Limits on what an organisation (domain empty) or one of its domains may send, set by
    staff and enforced on the node (mailhost/backend/quotas.py). Empty: no limit."""

    organisation = models.ForeignKey(
        Organisation, on_delete=models.CASCADE, related_name="sending_quotas"
    )
    domain = models.ForeignKey(Domain, on_delete=models.CASCADE, null=True, blank=True,
                               related_name="sending_quotas")
    max_recipients = models.PositiveIntegerField(null=True, blank=True)
    hourly = models.PositiveIntegerField(null=True, blank=True, help_text="Messages per hour.")
    daily = models.PositiveIntegerField(null=True, blank=True, help_text="Messages per day.")
    max_queued = models.PositiveIntegerField(
        null=True, blank=True, help_text="Messages waiting in the node's queue at once.")
    login_hourly = models.PositiveIntegerField(
        null=True, blank=True, help_text="Messages per hour for each SMTP login (a mailbox or an "
        "application sender) sending as these domains.")
    login_daily = models.PositiveIntegerField(
        null=True, blank=True, help_text="Messages per day for each SMTP login.")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["organisation"], condition=Q(domain__isnull=True),
                                    name="quota_one_per_organisation"),
            models.UniqueConstraint(fields=["domain"], condition=Q(domain__isnull=False),
                                    name="quota_one_per_domain"),
        ]

    def __str__(self) -> str:
        return f"quota of {self.domain or self.organisation}"

    @property
    def scope(self) -> str:
        return f"domain:{self.domain.name}" if self.domain_id else f"org:{self.organisation_id}"

    def limits(self) -> dict[str, int | None]:
        return {name: getattr(self, name) for name in LIMIT_FIELDS}


LIMIT_FIELDS = ("max_recipients", "hourly", "daily", "max_queued", "login_hourly", "login_daily")


class ApplicationSender(models.Model):
    """Send-only SMTP credentials for a service: a login that is no address, a password shown
    once, and the From addresses it may use. Never IMAP, POP3 or webmail (the node's Dovecot
    answers for it on the SMTP service only)."""

    organisation = models.ForeignKey(
        Organisation, on_delete=models.CASCADE, related_name="application_senders"
    )
    name = models.CharField(max_length=100, help_text="The service it is for.")
    login = models.CharField(max_length=40, unique=True)
    password_hash = models.CharField(max_length=200)
    addresses = models.JSONField(default=list, help_text="From addresses it may send as.")
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.login})"


class Webhook(models.Model):
    """An organisation's HTTPS endpoint that is told about its messages' delivery events, each
    POST signed with the endpoint's secret (HMAC-SHA256 over the timestamp and the body)."""

    organisation = models.ForeignKey(
        Organisation, on_delete=models.CASCADE, related_name="webhooks"
    )
    url = models.CharField(max_length=2000)
    secret = models.TextField(help_text="The signing secret, encrypted (mailhost.crypto).")
    events = models.JSONField(default=list, blank=True,
                              help_text="Statuses it wants (delivered, bounced…); empty: all.")
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return self.url

    def wants(self, status: str) -> bool:
        return self.active and (not self.events or status in self.events)


class WebhookState(models.TextChoices):
    PENDING = "pending"  # waiting for its next attempt
    DELIVERED = "delivered"  # the endpoint answered 2xx
    DEAD = "dead"  # every attempt failed: kept for a look and a replay


class WebhookDelivery(models.Model):
    """One event for one endpoint, and how its delivery went. Replaying puts it back to
    pending; the payload (and its event id, for the receiver's de-duplication) stays."""

    webhook = models.ForeignKey(Webhook, on_delete=models.CASCADE, related_name="deliveries")
    event = models.ForeignKey(DeliveryEvent, on_delete=models.CASCADE, related_name="+")
    payload = models.JSONField()
    state = models.CharField(max_length=9, choices=WebhookState.choices,
                             default=WebhookState.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now, db_index=True)
    last_status = models.PositiveIntegerField(null=True, blank=True,
                                              help_text="The endpoint's HTTP status.")
    last_error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["webhook", "event"], name="webhook_event_once"),
            models.CheckConstraint(condition=Q(state__in=WebhookState.values),
                                   name="webhook_delivery_state_valid"),
        ]
        indexes = [models.Index(fields=["state", "next_attempt_at"], name="webhook_due")]

    def __str__(self) -> str:
        return f"{self.event_id} → {self.webhook_id} ({self.state})"
