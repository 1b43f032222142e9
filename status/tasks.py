"""Celery tasks of the status page: each node checks itself on its own queue; the portal's
checks run in the worker. The beat runs both every MAILHOST_STATUS_CHECK_SECONDS."""

from celery import shared_task


@shared_task(name="status.check_node")
def check_node(node_id: int) -> int:
    """On the node's queue: its daemons, queue, disk and certificate. Returns the alerts."""
    from nodes.models import MailNode
    from status.services import status_check_node

    return len(status_check_node(MailNode.objects.get(pk=node_id)))


@shared_task(name="status.check_portal")
def check_portal() -> int:
    from status.services import status_check_portal

    return len(status_check_portal())


@shared_task(name="status.check_all")
def check_all() -> None:
    """Beat: every node checks itself (the state is node-local), then the portal's checks."""
    from nodes.models import MailNode
    from nodes.queues import node_queue

    for node_id, name in MailNode.objects.values_list("pk", "name"):
        check_node.apply_async(args=[node_id], queue=node_queue(name))
    check_portal.delay()
