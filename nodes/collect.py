"""Pulling what a node's event agent recorded into the portal, node by node.

Each node keeps its records (delivery events, TLS outcomes) in its own SQLite store until the
portal has taken them; an app's collector takes one batch at a time and returns how many it
took. A node whose store cannot be read is logged and skipped: the others are still collected,
and the node keeps its records for the next run.
"""

import logging
import sqlite3
from collections.abc import Callable
from pathlib import Path

from django.db import OperationalError

from mailhost.backend.config import EVENTS_DB
from nodes.models import MailNode

logger = logging.getLogger(__name__)

# (node name, path of its event store) -> how many records this call took
BatchCollector = Callable[[str, Path], int]


def events_store(node: MailNode) -> tuple[str, Path]:
    """(node name, path of the node's event store written by its event agent)."""
    return node.name, Path(node.state_dir) / EVENTS_DB


def collect_from_every_node(collect_batch: BatchCollector, *, batch: int, what: str) -> int:
    """Run `collect_batch` on every node's event store until it takes less than a full batch;
    returns how many records were taken in all."""
    total = 0
    for node in MailNode.objects.order_by("name"):
        name, store = events_store(node)
        try:
            while (taken := collect_batch(name, store)) == batch:
                total += taken
            total += taken
        except (OperationalError, sqlite3.Error, OSError) as exc:
            logger.warning("%s of %s not collected: %s", what, name, exc)
    return total
