"""Reads: what a scope covers, the runs staff see."""

from dataclasses import dataclass, field

from django.db.models import QuerySet

from backups.models import BackupRun
from mailboxes.models import Mailbox
from mailboxes.selectors import domain_get, mailbox_get
from mailhost.errors import Invalid
from tenants.access import Actor
from tenants.models import Organisation
from tenants.selectors import organisation_get

SCOPE_KINDS = ("install", "organisation", "domain", "mailbox")


@dataclass
class Scope:
    """What one backup or restore covers: whole organisations, or some of one's mailboxes."""

    kind: str
    label: str  # "install", "organisation:acme", "domain:acme.example", "mailbox:a@acme.example"
    organisations: list[Organisation]
    mailboxes: dict[int, list[Mailbox]] = field(default_factory=dict)  # organisation pk → …

    @property
    def includes_install(self) -> bool:
        return self.kind == "install"


def scope_resolve(actor: Actor, spec: str) -> Scope:
    """"install", "organisation:<slug>", "domain:<name>" or "mailbox:<address>"; NotFound for
    an unknown name, Invalid for an unknown kind."""
    kind, _, name = spec.strip().partition(":")
    if kind == "install" and not name:
        organisations = list(Organisation.objects.order_by("slug"))
        return _scope("install", "install", organisations, Mailbox.objects.all())
    if kind == "organisation" and name:
        org = organisation_get(actor, name)
        return _scope(kind, f"{kind}:{org.slug}", [org],
                      Mailbox.objects.filter(domain__organisation=org))
    if kind == "domain" and name:
        domain = domain_get(actor, name)
        return _scope(kind, f"{kind}:{domain.name}", [domain.organisation],
                      Mailbox.objects.filter(domain=domain))
    if kind == "mailbox" and name:
        mailbox = mailbox_get(actor, name)
        return _scope(kind, f"{kind}:{mailbox.address}", [mailbox.domain.organisation],
                      Mailbox.objects.filter(pk=mailbox.pk))
    raise Invalid(f"Unknown scope {spec!r}: use install, organisation:<slug>, domain:<name> "
                  "or mailbox:<address>.", field="scope")


def _scope(kind: str, label: str, organisations, mailboxes: QuerySet[Mailbox]) -> Scope:
    live = mailboxes.filter(deleted_at__isnull=True).select_related(
        "domain", "domain__node", "domain__organisation").order_by("domain__name", "local_part")
    by_org: dict[int, list[Mailbox]] = {org.pk: [] for org in organisations}
    for mailbox in live:
        by_org.setdefault(mailbox.domain.organisation_id, []).append(mailbox)
    return Scope(kind=kind, label=label, organisations=list(organisations), mailboxes=by_org)


def backup_runs(actor: Actor) -> QuerySet[BackupRun]:
    """Every run, newest first: staff only (backups concern the whole install)."""
    return BackupRun.objects.all() if actor.is_global else BackupRun.objects.none()
