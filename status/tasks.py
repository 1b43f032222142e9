"""Celery tasks of the status page: each node checks itself on its own queue; the portal's
checks run in the worker. The beat runs both every MAILHOST_STATUS_CHECK_SECONDS."""

from celery import shared_task

from nodes.models import MailNode
from nodes.queues import node_queue
from status.housekeeping import JOBS, housekeeping_run, node_logs
from status.services import status_check_node, status_check_portal


@shared_task(name="status.check_node")
def check_node(node_id: int) -> int:
    """On the node's queue: its daemons, queue, disk and certificate. Returns the alerts."""
    return len(status_check_node(MailNode.objects.get(pk=node_id)))


@shared_task(name="status.check_portal")
def check_portal() -> int:

    return len(status_check_portal())


@shared_task(name="status.check_all")
def check_all() -> None:
    """Beat: every node checks itself (the state is node-local), then the portal's checks."""
    for node_id, name in MailNode.objects.values_list("pk", "name"):
        check_node.apply_async(args=[node_id], queue=node_queue(name))
    check_portal.delay()


@shared_task(name="status.housekeep")
def housekeep(job: str) -> bool:
    """One housekeeping job of the portal (status.housekeeping.JOBS); True if it went well."""
    return housekeeping_run(job).ok


@shared_task(name="status.housekeep_node")
def housekeep_node(node_id: int) -> bool:
    """On the node's queue: rotate and expire its daemon logs."""
    node = MailNode.objects.get(pk=node_id)
    return housekeeping_run(f"node-logs:{node.name}", node_logs(node)).ok


@shared_task(name="status.housekeep_all")
def housekeep_all() -> None:
    """Beat, daily: every portal job, and every node's logs on its own queue."""
    for job in JOBS:
        housekeep.delay(job)
    for node_id, name in MailNode.objects.values_list("pk", "name"):
        housekeep_node.apply_async(args=[node_id], queue=node_queue(name))
