"""Reads of the node's mail queue, scoped by sender domain: an organisation sees the messages
its verified domains sent (the envelope sender's domain, VERP return paths included); staff see
everything, bounces (null sender) too."""

from dataclasses import dataclass
from pathlib import Path

from mailboxes.models import Domain
from mailhost.backend.postqueue import QueueEntry, QueueError, read_queue
from mailhost.errors import NotFound, Unavailable
from nodes.models import MailNode
from tenants.access import Actor, require_read
from tenants.models import Organisation

QUEUES = ("deferred", "hold", "active", "incoming", "maildrop")


@dataclass(frozen=True)
class Queued:
    node: str
    entry: QueueEntry
    organisation_id: int | None  # whose domain sent it; None: a bounce or a foreign sender


def queue_entries(node: MailNode) -> list[QueueEntry]:
    try:
        return read_queue(Path(node.state_dir))
    except QueueError as exc:
        raise Unavailable(f"The mail node's queue could not be read: {exc}") from exc


def _owners(names: set[str]) -> dict[str, int]:
    """Sender domain → the organisation whose verified domain it is. An unverified claim owns
    nothing: anyone may claim a name, so a claim must not show its owner's mail."""
    return dict(Domain.objects.filter(name__in=names, verified_at__isnull=False)
                .values_list("name", "organisation_id"))


def _scoped(nodes, *, organisation_id: int | None, domain_names: set[str] | None,
            queue: str | None) -> list[Queued]:
    found = []
    for node in nodes:
        entries = [e for e in queue_entries(node) if queue is None or e.queue == queue]
        owners = _owners({e.sender_domain for e in entries if e.sender_domain})
        for entry in entries:
            owner = owners.get(entry.sender_domain)
            if organisation_id is not None and owner != organisation_id:
                continue
            if domain_names is not None and entry.sender_domain not in domain_names:
                continue
            found.append(Queued(node.name, entry, owner))
    return found


def queue_entries_owned(node: MailNode) -> list[Queued]:
    """Every message in one node's queue with the organisation that sent it (for the status
    checks, which run as the system)."""
    return _scoped([node], organisation_id=None, domain_names=None, queue=None)


def queue_list(actor: Actor, organisation: Organisation, *, domain: Domain | None = None,
               queue: str | None = None) -> list[Queued]:
    """What the organisation's verified domains (or one of them) have in the queue."""
    require_read(actor, organisation.id)
    if domain is not None and domain.organisation_id != organisation.id:
        raise NotFound("That domain was not found.")
    nodes = MailNode.objects.filter(domains__organisation=organisation).distinct()
    names = {domain.name} if domain is not None else None
    return _scoped(nodes.order_by("name"), organisation_id=organisation.id, domain_names=names,
                   queue=queue)


def queue_list_all(actor: Actor, *, queue: str | None = None) -> list[Queued]:
    """Staff only: every message in every node's queue."""
    if not actor.is_global:
        raise NotFound("That page was not found.")
    return _scoped(MailNode.objects.order_by("name"), organisation_id=None, domain_names=None,
                   queue=queue)


def queued_get(actor: Actor, organisation: Organisation | None, queue_id: str) -> Queued:
    """One queued message the actor may act on: the organisation's, or (staff, no
    organisation) any. NotFound for another tenant's, as for one that is gone."""
    items = queue_list_all(actor) if organisation is None else queue_list(actor, organisation)
    for item in items:
        if item.entry.queue_id == queue_id:
            return item
    raise NotFound("That message is not in the queue.")
