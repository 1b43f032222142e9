"""Moving a domain to another mail node without losing mail (nodes.models.DomainMove).

Steps, each recorded only after it completed (a crash leaves the move at the step to redo;
every step may run again):

  queued      the move is recorded; nothing has changed yet.
  copying     the target node holds the domain's mailboxes (its lookup store) but routes the
              domain's mail to the source, which still serves it; the target pulls every
              mailbox from the source's doveadm server (`doveadm backup -R`, a mirror).
  switching   the domain's node becomes the target, through the normal change path. The
              source keeps delivering the domain itself until the target has applied the
              switch (then both deliver for a moment; never a bounce or a loop).
  final_sync  the source routes the domain to the target (peer transport); once that is
              live, the target takes what reached the source meanwhile (`doveadm sync -1 -R`,
              by message GUID: nothing twice; the source is left as it is).
  retiring    the source forgets the domain (lookup store), then removes its maildirs.
  done

The driver (`move_drive`) runs in the portal's worker (Celery task `mailboxes.drive_move`),
the beat task resumes moves nobody drives, and `manage.py movedomain --resume` resumes a
failed one. Node work runs on the nodes' own queues (nodes.tasks.move_pull / move_retire).
"""

import logging
import time
from datetime import timedelta

from celery import current_app
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from mailboxes.models import Alias, Domain, Mailbox
from mailboxes.services.common import _audit
from mailhost.errors import Conflict, Forbidden, Invalid
from nodes.changes import record_change, record_changes
from nodes.models import DomainMove, MailNode, NodeChange
from nodes.moves import open_move
from nodes.queues import node_queue
from tenants.access import Actor

logger = logging.getLogger(__name__)

S = DomainMove.Step
DRIVE_TASK = "mailboxes.drive_move"
MAX_ATTEMPTS = 5  # failed drives of one step before the move is marked failed
LEASE = timedelta(minutes=2)  # a driver renews it while it works
POLL_SECONDS = 0.5
# How long a driver waits for a node (a reconcile, a copy) before it lets go; the next drive
# (the task re-queued, the beat, --resume) waits on. Node work is not re-sent meanwhile.
DRIVE_BUDGET_SECONDS = 240
NODE_WORK_RESEND = timedelta(minutes=30)  # node work sent longer ago than this is sent again
# After the source routes the domain to the target: mail its Postfix had already handed to
# local delivery is in the maildirs before the final copy starts.
SETTLE_SECONDS = 3


class MoveInterrupted(Exception):
    """The driver lets go without an error: a node has not finished yet (the move waits)."""


def move_start(*, actor: Actor, domain: Domain, node: str) -> DomainMove:
    """Record a move of `domain` to the node named `node` (staff only) and schedule its driver.
    One open move per domain; the target must take mail from its peers (an SMTP address)."""
    if not actor.is_global:
        raise Forbidden("Only the mail service's staff move a domain between nodes.",
                        code="move_by_staff")
    target = MailNode.objects.filter(name=node).first() if isinstance(node, str) else None
    if target is None:
        raise Invalid(f"There is no mail node named {node!r}.", field="node",
                      code="unknown_node")
    with transaction.atomic():
        domain = Domain.objects.select_for_update().get(pk=domain.pk)
        if (existing := open_move(domain.pk)) is not None:
            raise Conflict(f"{domain.name} is already moving to {existing.target.name} "
                           f"({existing.step}).", code="move_open")
        if domain.node_id == target.pk:
            raise Conflict(f"{domain.name} is already on {target.name}.", field="node",
                           code="already_there")
        source = domain.node
        for end in (source, target):
            if not end.smtp_host:
                raise Invalid(f"Node {end.name} has no SMTP address for the other nodes "
                              "(manage.py nodeaddress): mail could not follow the domain.",
                              field="node", code="node_unreachable")
        move = DomainMove.objects.create(
            domain_id=domain.pk, domain_name=domain.name, source=source, target=target,
            mailboxes_total=_users(domain.pk).count(),
            requested_by=getattr(actor.user, "username", "") or "system",
        )
        _audit(actor, domain.organisation_id, "domain.move", domain,
               before={"node": source.name}, after={"node": target.name})
        transaction.on_commit(lambda: schedule_move(move.pk))
    return move


def schedule_move(move_id: int, countdown: float = 0) -> None:
    """Queue the driver (mailboxes.tasks.drive_move, by name: that module imports this one)."""
    current_app.send_task(DRIVE_TASK, args=[move_id], countdown=countdown)


def move_resume(move: DomainMove) -> DomainMove:
    """A failed move back at the step it failed at, with its attempts reset; node work that
    was sent is sent again, and the lease is free (the previous driver is gone)."""
    DomainMove.objects.filter(pk=move.pk, step=S.FAILED).update(step=F("failed_step"))
    DomainMove.objects.filter(pk=move.pk).exclude(step=S.DONE).update(
        failed_step="", attempts=0, lease_until=None, work="")
    move.refresh_from_db()
    return move


def _users(domain_id: int):
    return Mailbox.objects.filter(domain_id=domain_id, deleted_at=None)


def _addresses(domain_id: int) -> list[str]:
    return [f"{local}@{name}" for local, name in _users(domain_id).order_by("pk")
            .values_list("local_part", "domain__name")]


# --- the driver ------------------------------------------------------------------------------


def move_drive(move_id: int, *, budget: float = DRIVE_BUDGET_SECONDS) -> DomainMove | None:
    """Take the move as far as it goes within `budget` seconds. Returns the move: done, failed,
    or at the step it waits at (another drive continues); None when another driver holds it.
    A step that raises counts an attempt and records the error; after MAX_ATTEMPTS the move
    is failed."""
    if not _claim(move_id):
        return None
    deadline = time.monotonic() + budget
    try:
        while True:
            move = DomainMove.objects.select_related("source", "target").get(pk=move_id)
            if move.step in (S.DONE, S.FAILED):
                return move
            try:
                STEPS[move.step](move, deadline)
            except MoveInterrupted:
                return DomainMove.objects.get(pk=move_id)
            except Exception as exc:
                logger.warning("move of %s: %s failed: %s", move.domain_name, move.step, exc)
                _fail(move, exc)
                return DomainMove.objects.get(pk=move_id)
    finally:
        DomainMove.objects.filter(pk=move_id).update(lease_until=None)


def _claim(move_id: int) -> bool:
    now = timezone.now()
    return bool(DomainMove.objects.filter(
        Q(lease_until__isnull=True) | Q(lease_until__lt=now), pk=move_id,
    ).exclude(step=S.DONE).update(lease_until=now + LEASE))


def _fail(move: DomainMove, exc: Exception) -> None:
    error = f"{move.step}: {type(exc).__name__}: {exc}"[:2000]
    attempts = move.attempts + 1
    fields = {"attempts": attempts, "last_error": error}
    if attempts >= MAX_ATTEMPTS:
        fields |= {"step": S.FAILED, "failed_step": move.step}
    DomainMove.objects.filter(pk=move.pk, step=move.step).update(**fields)


def _advance(move: DomainMove, to: str, **fields) -> None:
    """Record that `move` left its step for `to` (only from the step it is at)."""
    DomainMove.objects.filter(pk=move.pk, step=move.step).update(
        step=to, work="", attempts=0, last_error="", mailboxes_done=F("mailboxes_done")
        if to != S.COPYING else 0, **fields)


def _wait(condition, deadline: float, what: str) -> None:
    while not condition():
        if time.monotonic() > deadline:
            raise MoveInterrupted(what)
        time.sleep(POLL_SECONDS)


def _renew(move_id: int) -> None:
    DomainMove.objects.filter(pk=move_id).update(lease_until=timezone.now() + LEASE)


def _wait_applied(move: DomainMove, node: MailNode, deadline: float) -> None:
    """Until `node` has applied every change recorded so far (those of this move included)."""
    wanted = MailNode.objects.values_list("desired_revision", flat=True).get(pk=node.pk)

    def applied() -> bool:
        _renew(move.pk)
        return MailNode.objects.values_list("applied_revision", flat=True).get(
            pk=node.pk) >= wanted

    _wait(applied, deadline, f"{node.name} has not applied revision {wanted} yet")


def _node_work(move: DomainMove, deadline: float, send) -> None:
    """Send the step's node work once (again after NODE_WORK_RESEND or a failure), then wait
    until the node reports it done; a failure on the node is this step's error."""
    step = move.step
    stale = move.updated_at < timezone.now() - NODE_WORK_RESEND
    if move.work != step and (not move.work.startswith("running:") or stale):
        DomainMove.objects.filter(pk=move.pk).update(work=f"running:{step}")
        send()

    def finished() -> bool:
        _renew(move.pk)
        work = DomainMove.objects.values_list("work", flat=True).get(pk=move.pk)
        if work == f"failed:{step}":
            error = DomainMove.objects.values_list("last_error", flat=True).get(pk=move.pk)
            DomainMove.objects.filter(pk=move.pk).update(work="")  # sent again next time
            raise RuntimeError(error or "the node's work failed")
        return work == step

    _wait(finished, deadline, f"{step}: the node's work is not finished yet")


def _pull(move: DomainMove) -> None:
    from nodes.tasks import move_pull

    source = move.source
    move_pull.apply_async(
        args=[move.pk, move.step, _addresses(move.domain_id), source.smtp_host,
              source.doveadm_port],
        queue=node_queue(move.target.name))


def _step_queued(move: DomainMove, deadline: float) -> None:
    # The target holds the domain from `copying` on (nodes.moves): its store gets the rows.
    with transaction.atomic():
        _advance(move, S.COPYING)
        record_change(node_id=move.target_id, kind=NodeChange.Kind.DOMAIN,
                      object_id=move.domain_id)


def _step_copying(move: DomainMove, deadline: float) -> None:
    _wait_applied(move, move.target, deadline)
    _node_work(move, deadline, lambda: _pull(move))
    _advance(move, S.SWITCHING, copied_at=timezone.now())


def _step_switching(move: DomainMove, deadline: float) -> None:
    with transaction.atomic():
        domain = Domain.objects.select_for_update().get(pk=move.domain_id)
        if domain.node_id != move.target_id:
            domain.node_id = move.target_id
            domain.save(update_fields=["node"])
            # Both nodes render the domain again (the target now takes its mail), and every
            # other node hears of both (its transports follow the domain).
            record_change(node_id=move.source_id, kind=NodeChange.Kind.DOMAIN,
                          object_id=domain.pk)
            revision = record_change(node_id=move.target_id, kind=NodeChange.Kind.DOMAIN,
                                     object_id=domain.pk)
            Domain.objects.filter(pk=domain.pk).update(revision=revision)
    _wait_applied(move, move.target, deadline)
    with transaction.atomic():
        # Now the source may route the domain to the target (nodes.moves.unrouted_domain_ids).
        _advance(move, S.FINAL_SYNC, switched_at=timezone.now())
        record_change(node_id=move.source_id, kind=NodeChange.Kind.PEERS,
                      object_id=move.target_id)


def _step_final_sync(move: DomainMove, deadline: float) -> None:
    _wait_applied(move, move.source, deadline)
    if not move.work:
        time.sleep(SETTLE_SECONDS)
    _node_work(move, deadline, lambda: _pull(move))
    with transaction.atomic():
        # The source forgets the domain: its rows, each mailbox's and alias's.
        _advance(move, S.RETIRING, synced_at=timezone.now())
        revision = record_changes(node_id=move.source_id, kind=NodeChange.Kind.DOMAIN)
        rows = [NodeChange(node_id=move.source_id, revision=revision,
                           kind=NodeChange.Kind.DOMAIN, object_id=move.domain_id)]
        rows += [NodeChange(node_id=move.source_id, revision=revision,
                            kind=NodeChange.Kind.MAILBOX, object_id=pk)
                 for pk in Mailbox.objects.filter(domain_id=move.domain_id)
                 .values_list("pk", flat=True)]
        rows += [NodeChange(node_id=move.source_id, revision=revision,
                            kind=NodeChange.Kind.ALIAS, object_id=pk)
                 for pk in Alias.objects.filter(domain_id=move.domain_id)
                 .values_list("pk", flat=True)]
        NodeChange.objects.bulk_create(rows)


def _step_retiring(move: DomainMove, deadline: float) -> None:
    from nodes.tasks import move_retire

    _wait_applied(move, move.source, deadline)  # no Dovecot there knows the users any more
    homes = [str(h) for h in Mailbox.objects.filter(domain_id=move.domain_id)
             .values_list("home_id", flat=True)]
    _node_work(move, deadline, lambda: move_retire.apply_async(
        args=[move.pk, homes], queue=node_queue(move.source.name)))
    _advance(move, S.DONE, finished_at=timezone.now())


STEPS = {
    S.QUEUED: _step_queued,
    S.COPYING: _step_copying,
    S.SWITCHING: _step_switching,
    S.FINAL_SYNC: _step_final_sync,
    S.RETIRING: _step_retiring,
}


def moves_resume_all() -> int:
    """Beat: drive every open move nobody drives (a crashed or killed driver's lease has run
    out). Failed moves wait for an operator (`movedomain --resume`)."""
    now = timezone.now()
    ids = list(DomainMove.objects.exclude(step__in=[S.DONE, S.FAILED])
               .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now))
               .values_list("pk", flat=True))
    for move_id in ids:
        schedule_move(move_id)
    return len(ids)
