"""Celery tasks of the node control plane: reconcile a node, incrementally or in full; purge
archived maildirs; renew the node's certificates. The registered names of the older tasks keep
their `mailboxes.` prefix so tasks queued before the move (and the beat schedule) still find
them; tasks added since are named `nodes.`."""

import logging
import sqlite3
import time
from pathlib import Path

from celery import shared_task
from django.conf import settings
from django.db import OperationalError

from mailhost.backend import mailmove
from mailhost.backend.config import NodeConfig
from mailhost.env import env_bool
from nodes import certificates, reconcile
from nodes.models import DomainMove, MailNode
from nodes.queues import clear_pending, node_queue

logger = logging.getLogger(__name__)

TRANSIENT = (OperationalError, sqlite3.OperationalError, OSError)
FINAL_PASS_PAUSE_SECONDS = 5


@shared_task(
    name="mailboxes.reconcile_node",
    acks_late=True,  # safe: applying a revision twice changes nothing
    autoretry_for=TRANSIENT,
    retry_backoff=True,
    retry_backoff_max=60,
    max_retries=8,
)
def reconcile_node(node_id: int) -> int:
    """Apply the node's pending changes; returns the revision now applied."""
    clear_pending(node_id)
    node = MailNode.objects.get(pk=node_id)
    if _rebuild_everything():
        return reconcile.reconcile_full(node, incremental_first=False).revision
    return reconcile.reconcile_incremental(node)


def _rebuild_everything() -> bool:
    """MAILHOST_RECONCILE_FORCE_FULL=true (benchmarks only, never in production): every change
    re-renders and re-applies the whole node, the design `make bench` (B7) compares against."""
    return env_bool("MAILHOST_RECONCILE_FORCE_FULL", False)


@shared_task(name="mailboxes.reconcile_node_full", acks_late=True, autoretry_for=TRANSIENT,
             retry_backoff=True, max_retries=3)
def reconcile_node_full(node_id: int) -> int:
    """Diff every row and managed file of the node, report drift and repair it."""
    report = reconcile.reconcile_full(MailNode.objects.get(pk=node_id))
    return len(report.drift)


@shared_task(name="mailboxes.reconcile_all_full")
def reconcile_all_full() -> None:
    """Beat: a full reconcile of every node, each on its own queue."""
    for node_id, name in MailNode.objects.values_list("pk", "name"):
        reconcile_node_full.apply_async(args=[node_id], queue=node_queue(name))


@shared_task(name="mailboxes.purge_archives", acks_late=True)
def purge_archives(node_id: int, home_ids: list[str]) -> None:
    reconcile.purge_archives(Path(MailNode.objects.get(pk=node_id).state_dir), home_ids)


@shared_task(name="nodes.renew_certificates", acks_late=True)
def renew_certificates(node_id: int) -> dict:
    """On the node's queue: obtain the node's due certificates (ACME), within the back-off."""
    node = MailNode.objects.get(pk=node_id)
    result = certificates.renew_node_certificates(node)
    alerted = certificates.alert_staff(node)
    return {"issued": result.issued, "failed": result.failed, "deferred": result.deferred,
            "alerted": alerted}


@shared_task(name="nodes.renew_all_certificates")
def renew_all_certificates() -> None:
    """Beat: each node renews its certificates on its own queue (no-op while ACME is off)."""
    if not settings.MAILHOST_ACME_DIRECTORY_URL:
        return
    for node_id, name in MailNode.objects.values_list("pk", "name"):
        renew_certificates.apply_async(args=[node_id], queue=node_queue(name))


def _move_failed(move_id: int, step: str, exc: Exception) -> None:
    DomainMove.objects.filter(pk=move_id, step=step).update(
        work=f"failed:{step}", last_error=f"{type(exc).__name__}: {exc}"[:2000])


@shared_task(name="nodes.move_pull", acks_late=True)
def move_pull(move_id: int, step: str, users: list[str], host: str, port: int) -> None:
    """On the target node of a domain move: pull each mailbox from the source's doveadm server
    (the first copy mirrors, the final one merges), counting them on the move; then mark the
    step's node work done. Nothing happens for a move that is no longer at `step`."""
    move = DomainMove.objects.filter(pk=move_id, step=step).first()
    if move is None:
        return
    conf = NodeConfig.from_settings(state_dir=Path(move.target.state_dir)).path(
        "dovecot/dovecot.conf")
    mirror = step == DomainMove.Step.COPYING
    try:
        DomainMove.objects.filter(pk=move_id).update(mailboxes_done=0)
        for done, user in enumerate(users, start=1):
            mailmove.pull_mailbox(conf, user, host, port, mirror=mirror)
            DomainMove.objects.filter(pk=move_id).update(mailboxes_done=done)
        if not mirror:
            # Once more after a pause: a message the source's Postfix had handed to local
            # delivery just before its route to this node took effect is in by now.
            time.sleep(FINAL_PASS_PAUSE_SECONDS)
            for user in users:
                mailmove.pull_mailbox(conf, user, host, port, mirror=False)
    except Exception as exc:
        logger.warning("move %s: copying from %s:%s failed: %s", move_id, host, port, exc)
        _move_failed(move_id, step, exc)
        raise
    DomainMove.objects.filter(pk=move_id, step=step).update(work=step)


@shared_task(name="nodes.move_retire", acks_late=True)
def move_retire(move_id: int, home_ids: list[str]) -> None:
    """On the source node of a domain move: remove the moved mailboxes' maildirs (the lookup
    store no longer has them; the target holds every message)."""
    step = DomainMove.Step.RETIRING
    move = DomainMove.objects.filter(pk=move_id, step=step).first()
    if move is None:
        return
    try:
        mailmove.remove_homes(Path(move.source.state_dir), home_ids)
    except Exception as exc:
        _move_failed(move_id, step, exc)
        raise
    DomainMove.objects.filter(pk=move_id, step=step).update(work=step)
