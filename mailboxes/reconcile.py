"""Bringing a node's mail stack to the desired state: scheduling and coalescing.

A burst of changes must not mean a burst of applies. `enqueue_coalesced` sets a per-node
"pending" flag in Redis and enqueues a task only when the flag was not already set; the task
clears the flag *before* it reads the change log, so a change committed while it runs sets the
flag again and gets a task of its own. Nothing is lost if Redis is down: the periodic full
reconcile repairs whatever was missed.
"""

import logging

import redis

from mailboxes.models import MailNode
from mailhost.redis import get_redis

logger = logging.getLogger(__name__)

PENDING_TTL_SECONDS = 300  # a lost task does not block a node for longer than this


def pending_key(node_id: int) -> str:
    return f"mailhost:reconcile-pending:{node_id}"


def node_queue(node_name: str) -> str:
    return f"node.{node_name}"


def enqueue_coalesced(node_id: int) -> None:
    from mailboxes.tasks import reconcile_node

    try:
        if not get_redis().set(pending_key(node_id), "1", nx=True, ex=PENDING_TTL_SECONDS):
            return  # a reconcile is already queued and has not started: it will see this change
    except redis.RedisError as exc:
        logger.warning("reconcile of node %s not coalesced (Redis: %s)", node_id, exc)
    name = MailNode.objects.values_list("name", flat=True).get(pk=node_id)
    try:
        reconcile_node.apply_async(args=[node_id], queue=node_queue(name))
    except Exception as exc:  # broker down: the periodic full reconcile will catch up
        logger.warning("reconcile of node %s not enqueued: %s", node_id, exc)


def clear_pending(node_id: int) -> None:
    try:
        get_redis().delete(pending_key(node_id))
    except redis.RedisError as exc:
        logger.warning("could not clear the pending flag of node %s: %s", node_id, exc)
