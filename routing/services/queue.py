"""Actions on a queued message: retry now, hold, release, delete. Audited; only on a message
the actor may see (routing.queue), acted on by Postfix's own tools on its node."""

from pathlib import Path

from django.db import transaction

from mailhost.backend.postqueue import ACTIONS, QueueError, act
from mailhost.errors import Conflict, Invalid
from nodes.models import MailNode
from routing.queue import Queued, queued_get
from tenants.access import Actor, require_write
from tenants.audit import audit_record
from tenants.models import Organisation


def queue_act(*, actor: Actor, organisation: Organisation | None, queue_id: str,
              action: str) -> Queued:
    """`action` one message of the organisation's (staff: organisation None, any message).
    NotFound if it is not (or no longer) queued, Conflict if Postfix refused (e.g. releasing
    a message that is not held)."""
    if action not in ACTIONS:
        raise Invalid(f"The action is one of {', '.join(ACTIONS)}.", field="action")
    if organisation is not None:
        require_write(actor, organisation.id)
    item = queued_get(actor, organisation, queue_id)
    node = MailNode.objects.get(name=item.node)
    with transaction.atomic():
        audit_record(actor=actor, organisation_id=item.organisation_id,
                     action=f"queue.{action}", target_type="queued message",
                     target=f"{item.node}:{queue_id}",
                     before={"queue": item.entry.queue, "sender": item.entry.sender,
                             "recipients": [a for a, _ in item.entry.recipients][:20],
                             "reason": item.entry.reason[:300]})
        try:
            act(Path(node.state_dir), action, queue_id)
        except QueueError as exc:
            raise Conflict(f"Postfix did not {action} the message: {exc}") from exc
    return item
