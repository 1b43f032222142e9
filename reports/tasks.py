"""Celery tasks of the reports app: draining each mail node's report spool."""

from pathlib import Path

from celery import shared_task

from mailhost.backend.config import NodeConfig
from nodes.models import MailNode
from nodes.queues import node_queue
from reports.intake import intake_drain
from reports.rdns import source_names_resolve
from reports.retention import reports_prune


@shared_task(name="reports.intake", autoretry_for=(OSError,), max_retries=3)
def intake(node_id: int) -> dict:
    """On the node's queue: ingest what its Postfix spooled for the report intake."""
    node = MailNode.objects.get(pk=node_id)
    spool = NodeConfig.from_settings(state_dir=Path(node.state_dir)).report_spool
    result = intake_drain(spool=spool)
    if result.left:  # a burst: carry on at once rather than at the next beat
        intake.apply_async(args=[node_id], queue=node_queue(node.name))
    return result.__dict__


@shared_task(name="reports.intake_all")
def intake_all() -> None:
    """Beat: every node drains its own spool, on its own queue (the spool is node-local)."""
    for node_id, name in MailNode.objects.values_list("pk", "name"):
        intake.apply_async(args=[node_id], queue=node_queue(name))


@shared_task(name="reports.prune")
def prune() -> dict:
    """Beat, daily: delete reports, failure samples and log entries past their retention."""

    return reports_prune()


@shared_task(name="reports.resolve_sources", autoretry_for=(OSError,), max_retries=3)
def resolve_sources(ips: list[str]) -> int:
    """After an aggregate report was stored: the reverse names of its sources."""

    return source_names_resolve(ips)
