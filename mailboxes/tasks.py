"""Celery tasks for mailboxes: purge deleted ones, collect their storage use from the nodes."""

from pathlib import Path

from celery import shared_task

from mailboxes.services import mailbox_purge_expired, mailbox_usage_record, moves
from mailhost.backend.config import NodeConfig
from mailhost.backend.stack import Stack
from nodes.models import DomainMove, MailNode
from nodes.queues import node_queue
from nodes.tasks import TRANSIENT


@shared_task(name="mailboxes.purge_deleted_mailboxes")
def purge_deleted_mailboxes() -> int:
    """Beat: forget mailboxes deleted longer ago than the retention period, and their mail."""
    return mailbox_purge_expired()


@shared_task(name="mailboxes.collect_usage", autoretry_for=TRANSIENT, max_retries=3)
def collect_usage(node_id: int) -> int:
    """On the node: read Dovecot's quota use for every mailbox into the central database."""
    node = MailNode.objects.get(pk=node_id)
    stack = Stack(NodeConfig.from_settings(state_dir=Path(node.state_dir)))
    if not stack.is_running():
        return 0
    return mailbox_usage_record(node_id=node_id, usage=stack.quota_usage())


@shared_task(name="mailboxes.collect_usage_all")
def collect_usage_all() -> None:
    """Beat: ask every node for its mailboxes' storage use, each on its own queue."""
    for node_id, name in MailNode.objects.values_list("pk", "name"):
        collect_usage.apply_async(args=[node_id], queue=node_queue(name))


@shared_task(name="mailboxes.drive_move", acks_late=True)
def drive_move(move_id: int) -> str:
    """Take a domain move as far as it goes (mailboxes.services.moves); while it waits on a
    node, drive it again shortly (the beat resumes it too, after a crash)."""
    move = moves.move_drive(move_id)
    if move is None:
        return "held"  # another driver has it
    if move.step not in (DomainMove.Step.DONE, DomainMove.Step.FAILED) and not move.last_error:
        moves.schedule_move(move_id, countdown=2)
    elif move.last_error and move.step != DomainMove.Step.FAILED:
        moves.schedule_move(move_id, countdown=30)  # a failed attempt: again, a little later
    return move.step


@shared_task(name="mailboxes.resume_moves")
def resume_moves() -> int:
    """Beat: drive the open domain moves that no driver holds."""
    return moves.moves_resume_all()
