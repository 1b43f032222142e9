"""Where a node's work is queued, and its "reconcile pending" flag in Redis (see
nodes.scheduling for how the flag coalesces a burst of changes into few applies)."""

import logging

import redis

from mailhost.redis import get_redis

logger = logging.getLogger(__name__)

PENDING_TTL_SECONDS = 300  # a lost task does not block a node for longer than this


def pending_key(node_id: int) -> str:
    return f"mailhost:reconcile-pending:{node_id}"


def node_queue(node_name: str) -> str:
    """The Celery queue of a node: its own worker(s) consume it."""
    return f"node.{node_name}"


def set_pending(node_id: int) -> bool:
    """Set the node's pending flag; False when it was already set (a reconcile is queued and
    has not started yet). Raises redis.RedisError when Redis is down."""
    return bool(get_redis().set(pending_key(node_id), "1", nx=True, ex=PENDING_TTL_SECONDS))


def clear_pending(node_id: int) -> None:
    try:
        get_redis().delete(pending_key(node_id))
    except redis.RedisError as exc:
        logger.warning("could not clear the pending flag of node %s: %s", node_id, exc)
