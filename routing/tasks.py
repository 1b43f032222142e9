"""Celery tasks of the routing app."""

from celery import shared_task

from nodes.collect import collect_from_every_node
from routing.services import tls_outcomes_collect, tls_reports_send
from routing.services.tls_policy import BATCH
from routing.srs import forwarding_ensure, srs_prune
from tenants.commands import command_actor


@shared_task(name="routing.collect_tls_failures", ignore_result=True)
def collect_tls_failures() -> int:
    """Pull every node's new TLS failures and success counts (the node keeps them until then)."""
    return collect_from_every_node(
        lambda name, store: tls_outcomes_collect(node_name=name, store=store),
        batch=BATCH, what="TLS outcomes")


@shared_task(name="routing.forwarding_housekeep")
def forwarding_housekeep() -> dict:
    """Hourly: the SRS secret and ARC key exist; replaced SRS secrets past their grace go."""
    actor = command_actor("forwarding housekeeping")
    return {"made": forwarding_ensure(actor=actor), "pruned": srs_prune(actor=actor)}


@shared_task(name="routing.send_tls_reports")
def send_tls_reports() -> dict:
    """Beat, daily: yesterday's RFC 8460 reports to the recipient domains that ask for them,
    and the retries of failed ones (routing.services.tls_reports)."""
    collect_tls_failures()  # the last of yesterday's outcomes still on the nodes
    result = tls_reports_send()
    return {"sent": result.sent, "failed": result.failed, "skipped": result.skipped}
