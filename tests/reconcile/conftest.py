import pytest
from celery.contrib.testing.worker import start_worker

from mailboxes.reconcile import node_queue, pending_key
from mailhost.celery import app
from mailhost.redis import get_redis


@pytest.fixture
def reconcile_worker(stack_node):
    """A real Celery worker consuming the node's queue from the real Redis broker."""
    queue = node_queue(stack_node.name)
    redis = get_redis()
    redis.delete(pending_key(stack_node.pk), queue)  # nothing left over from other tests
    with start_worker(app, perform_ping_check=False, queues=[queue], pool="solo", concurrency=1):
        yield stack_node
