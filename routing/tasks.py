from celery import shared_task

from routing.srs import forwarding_ensure, srs_prune
from tenants.commands import command_actor


@shared_task(name="routing.forwarding_housekeep")
def forwarding_housekeep() -> dict:
    """Hourly: the SRS secret and ARC key exist; replaced SRS secrets past their grace go."""
    actor = command_actor("forwarding housekeeping")
    return {"made": forwarding_ensure(actor=actor), "pruned": srs_prune(actor=actor)}
