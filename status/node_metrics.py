"""Each mail node's own counters, gathered when /metrics is scraped (status.metrics).

Per node, labelled `node`:
- Dovecot's: its stats listener's OpenMetrics (loopback `MAILHOST_DOVECOT_STATS_PORT`), every
  `dovecot_*` family relayed as it is with the node's label added;
- Postfix's: the messages in each queue now (its spool directories, counted), and every
  delivery attempt by agent and outcome since the event agent's store began
  (mailhost.backend.events counters).

The node stands alone: nothing here writes to it or waits on it long. Each source is read
with a short timeout (MAILHOST_METRICS_NODE_TIMEOUT_MS); one that does not answer gives
`mailhost_node_source_up{node,source}` 0 and no samples, never an error of the scrape.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from django.conf import settings
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from mailhost.backend.config import EVENTS_DB, NodeConfig
from mailhost.backend.events import delivery_counters
from nodes.models import MailNode

logger = logging.getLogger(__name__)

POSTFIX_QUEUES = ("maildrop", "incoming", "active", "deferred", "hold")
RELAYED_TYPES = {"counter", "gauge", "unknown", "histogram", "summary"}
MAX_STATS_BYTES = 1024 * 1024  # Dovecot's page is a few KB; more is not Dovecot's


class NodeSourceDown(Exception):
    pass


def node_families() -> Iterator[Metric]:
    """Every node's families, each family once with all nodes' samples."""
    up = GaugeMetricFamily("mailhost_node_source_up", "A node's counter source answered the "
                           "scrape (1) or not (0): dovecot, postfix_queue, postfix_events.",
                           labels=["node", "source"])
    queues = GaugeMetricFamily("mailhost_node_postfix_queue_messages", "Messages in each of "
                               "a node's Postfix queues now.", labels=["node", "queue"])
    attempts = CounterMetricFamily("mailhost_node_postfix_deliveries", "Delivery attempts "
                                   "Postfix logged on a node, by agent (smtp, lmtp, …) and "
                                   "outcome (sent, deferred, bounced, expired).",
                                   labels=["node", "agent", "status"])
    dovecot: dict[str, Metric] = {}
    sources = (("dovecot", _relay_dovecot, dovecot),
               ("postfix_queue", _queue_samples, queues),
               ("postfix_events", _attempt_samples, attempts))
    for node in MailNode.objects.all():
        try:
            cfg = NodeConfig.from_settings(state_dir=Path(node.state_dir))
        except ValueError as exc:  # a state directory the node could not run from either
            logger.warning("metrics: node %s has no usable configuration: %s", node.name, exc)
            cfg = None
        for source, read, into in sources:
            up.add_metric([node.name, source], _answered(node.name, cfg, source, read, into))
    yield up
    yield queues
    yield attempts
    yield from dovecot.values()


def _answered(node: str, cfg: NodeConfig | None, source: str, read, into) -> int:
    try:
        if cfg is None:
            raise NodeSourceDown("no usable node configuration")
        read(node, cfg, into)
    except (OSError, ValueError, sqlite3.Error, NodeSourceDown) as exc:
        logger.info("metrics: %s of node %s did not answer: %s", source, node, exc)
        return 0
    return 1


def _timeout() -> float:
    return settings.MAILHOST_METRICS_NODE_TIMEOUT_MS / 1000


def _relay_dovecot(node: str, cfg: NodeConfig, into: dict[str, Metric]) -> None:
    """Dovecot's families parsed first, then added: a page cut short adds nothing."""
    url = f"http://127.0.0.1:{cfg.ports['stats']}/metrics"
    with urllib.request.urlopen(url, timeout=_timeout()) as response:  # noqa: S310 (loopback)
        body = response.read(MAX_STATS_BYTES + 1)
    if len(body) > MAX_STATS_BYTES:
        raise NodeSourceDown("the stats page is too large")
    families = [f for f in text_string_to_metric_families(body.decode())
                if f.name.startswith("dovecot_") and f.type in RELAYED_TYPES]
    for family in families:
        merged = into.setdefault(family.name, Metric(family.name, family.documentation,
                                                     family.type, family.unit))
        for sample in family.samples:
            if sample.name.endswith("_created"):
                continue  # when Dovecot started counting: no use once relayed
            merged.add_sample(sample.name, {**sample.labels, "node": node}, sample.value)


def _queue_samples(node: str, cfg: NodeConfig, into: GaugeMetricFamily) -> None:
    """Counted file by file (no stat): what Postfix holds in each queue directory."""
    spool = cfg.path("spool")
    counts = {}
    for name in POSTFIX_QUEUES:
        counts[name] = sum(len(files) for _root, _dirs, files in
                           os.walk(spool / name, onerror=_raise))
    for name, count in counts.items():
        into.add_metric([node, name], count)


def _attempt_samples(node: str, cfg: NodeConfig, into: CounterMetricFamily) -> None:
    db = cfg.path(EVENTS_DB)
    if not db.exists():
        raise NodeSourceDown("the event agent has no store yet")
    for (agent, status), n in sorted(delivery_counters(db).items()):
        into.add_metric([node, agent, status], n)


def _raise(error: OSError) -> None:
    raise error
