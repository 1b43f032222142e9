"""When a node is reconciled: on commit of every change, coalesced.

A burst of changes must not mean a burst of applies. `schedule_reconcile` sets a per-node
"pending" flag in Redis and enqueues a task only when the flag was not already set; the task
clears the flag *before* it reads the change log, so a change committed while it runs sets the
flag again and gets a task of its own. If Redis is down the task is enqueued anyway, and if the
broker is down nothing is lost: the periodic full reconcile repairs whatever was missed.
"""

import logging

import redis

from nodes.models import MailNode
from nodes.queues import node_queue, set_pending
from nodes.tasks import reconcile_node

logger = logging.getLogger(__name__)


def schedule_reconcile(node_id: int) -> None:
    """Enqueue an incremental reconcile of a node (called on commit by `record_change`)."""
    try:
        if not set_pending(node_id):
            return  # a reconcile is queued and has not started yet: it will see this change
    except redis.RedisError as exc:
        logger.warning("reconcile of node %s not coalesced (Redis: %s)", node_id, exc)
    name = MailNode.objects.values_list("name", flat=True).get(pk=node_id)
    try:
        reconcile_node.apply_async(args=[node_id], queue=node_queue(name))
    except Exception as exc:  # broker down: the periodic full reconcile will catch up
        logger.warning("reconcile of node %s not enqueued: %s", node_id, exc)
