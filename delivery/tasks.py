"""Celery tasks of the outbound channel."""

import logging
import sqlite3

from celery import shared_task
from django.db import OperationalError

from delivery import node
from delivery.services.events import BATCH, events_collect

logger = logging.getLogger(__name__)


@shared_task(name="delivery.collect_events", ignore_result=True)
def collect_events() -> int:
    """Pull every node's new delivery events (the node keeps them until we do)."""
    total = 0
    for mail_node in node.all_nodes():
        name, store = node.events_store(mail_node)
        try:
            while (taken := events_collect(node_name=name, store=store)) == BATCH:
                total += taken
            total += taken
        except (OperationalError, sqlite3.Error, OSError) as exc:
            logger.warning("delivery events of %s not collected: %s", name, exc)
    return total
