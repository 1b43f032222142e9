"""The node control plane's rows: each mail node, and the change log its reconciler reads."""

from django.db import models
from django.db.models import Q


class MailNode(models.Model):
    """One Postfix/Dovecot/OpenDKIM host and its state directory.

    `desired_revision` is bumped, under a row lock, by every change to this node's mail state,
    so revisions commit in order; the reconciler records the revision it has applied.
    """

    name = models.SlugField(max_length=50, unique=True)
    state_dir = models.CharField(max_length=200)
    desired_revision = models.BigIntegerField(default=0)
    applied_revision = models.BigIntegerField(default=0)
    applied_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    last_drift = models.JSONField(default=list, blank=True)
    last_drift_at = models.DateTimeField(null=True, blank=True)
    # Where the other nodes deliver this node's domains (their Postfix renders a transport
    # `smtp:[smtp_host]:smtp_port` for each, mailhost/backend/peers.py): its MX listener as
    # the other nodes reach it. Empty: the others find its domains' MX in DNS like any sender.
    smtp_host = models.CharField(max_length=253, blank=True)
    smtp_port = models.PositiveIntegerField(default=25)

    class Meta:
        db_table = "mailboxes_mailnode"  # moved from mailboxes/ with its rows (no data moved)
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(applied_revision__lte=models.F("desired_revision")),
                name="node_applied_not_ahead",
            ),
            models.CheckConstraint(
                condition=Q(smtp_port__gte=1, smtp_port__lte=65535), name="node_smtp_port_range"
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def lag(self) -> int:
        return self.desired_revision - self.applied_revision


class NodeChange(models.Model):
    """A key whose rendered state changed at a revision: the incremental reconciler's work list."""

    class Kind(models.TextChoices):
        DOMAIN = "domain"
        MAILBOX = "mailbox"
        ALIAS = "alias"
        DKIM = "dkim"
        ROLES = "roles"  # a domain's postmaster@/abuse@ routing (object_id: the domain)
        # An organisation's outbound policy: suppressions, quotas, application senders
        # (object_id: the organisation; the node's outbound stores are re-rendered whole).
        OUTBOUND = "outbound"
        RELAY = "relay"  # the relay tables (object_id: the relay; all are re-rendered)
        TLS_POLICY = "tls_policy"  # outbound TLS per recipient domain (object_id: the policy)
        FORWARDING = "forwarding"  # SRS secrets or the ARC key (object_id: 0, install-wide)
        # Another node's live domains changed (object_id: that node): the transports to the
        # other nodes (mailhost/backend/peers.py) are re-rendered whole.
        PEERS = "peers"
        # An organisation turned encryption at rest on or off (object_id: the organisation;
        # the node's mail_crypt key store is re-rendered whole).
        MAIL_CRYPT = "mail_crypt"

    node = models.ForeignKey(MailNode, on_delete=models.CASCADE, related_name="changes")
    revision = models.BigIntegerField()
    kind = models.CharField(max_length=10, choices=Kind.choices)
    object_id = models.BigIntegerField()

    class Meta:
        db_table = "mailboxes_nodechange"
        indexes = [models.Index(fields=["node", "revision"], name="nodechange_node_rev")]

    def __str__(self) -> str:
        return f"r{self.revision} {self.kind}:{self.object_id}"
