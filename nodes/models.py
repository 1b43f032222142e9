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
    # Its doveadm server (MAILHOST_DOVEADM_PORT on that node), at `smtp_host`: where another
    # node pulls the mail of a domain moving away from this one (DomainMove).
    doveadm_port = models.PositiveIntegerField(default=2532)

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


class DomainMove(models.Model):
    """A domain moving from one node to another, step by step (nodes.moves drives it).

    Each step is recorded only after it completed, so a crash leaves the move at the step to
    redo, and every step may run again. The domain is named by id and name (the control plane
    imports no app): `domain_id` is a mailboxes.Domain.
    """

    class Step(models.TextChoices):
        QUEUED = "queued"  # recorded; nothing done yet
        COPYING = "copying"  # the target holds the domain (routed to the source) and copies
        SWITCHING = "switching"  # the domain's node becomes the target
        FINAL_SYNC = "final_sync"  # the source routes to the target; the last copy
        RETIRING = "retiring"  # the source forgets the domain and removes its maildirs
        DONE = "done"
        FAILED = "failed"  # gave up after MAX_ATTEMPTS; `failed_step` is where (resumable)

    OPEN_STEPS = (Step.QUEUED, Step.COPYING, Step.SWITCHING, Step.FINAL_SYNC, Step.RETIRING,
                  Step.FAILED)

    domain_id = models.BigIntegerField()
    domain_name = models.CharField(max_length=253)
    source = models.ForeignKey(MailNode, on_delete=models.PROTECT, related_name="moves_out")
    target = models.ForeignKey(MailNode, on_delete=models.PROTECT, related_name="moves_in")
    step = models.CharField(max_length=12, choices=Step.choices, default=Step.QUEUED)
    failed_step = models.CharField(max_length=12, choices=Step.choices, blank=True)
    mailboxes_total = models.PositiveIntegerField(default=0)
    mailboxes_done = models.PositiveIntegerField(default=0)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    requested_by = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    copied_at = models.DateTimeField(null=True, blank=True)
    switched_at = models.DateTimeField(null=True, blank=True)
    synced_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # The node work of a step (the copies, the retirement) runs on a node's worker, which
    # writes here: "running:<step>" when sent, "<step>" when done, "failed:<step>" if not.
    work = models.CharField(max_length=24, blank=True)
    # A driver holds the move until then (renewed while it works): one driver at a time.
    lease_until = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["domain_id"], condition=~Q(step="done"), name="domainmove_one_open",
            ),
            models.CheckConstraint(condition=~Q(source=models.F("target")),
                                   name="domainmove_other_node"),
        ]

    def __str__(self) -> str:
        return f"{self.domain_name}: {self.source} → {self.target} ({self.step})"

    @property
    def is_open(self) -> bool:
        return self.step != self.Step.DONE
