"""The Celery task behind bulk CSV import (listed in CELERY_IMPORTS so the worker loads it)."""

from celery import shared_task
from django.dispatch import receiver

from mailboxes import events
from mailboxes.services import mailbox_import_run


@shared_task(name="mailboxes.import_mailboxes")
def import_mailboxes(import_id: int) -> int:
    """Run a queued mailbox import; returns how many mailboxes it created."""
    return mailbox_import_run(import_id=import_id).created


@receiver(events.import_queued, dispatch_uid="mailboxes.import_queued")
def _import_queued(sender, import_id: int, **kwargs) -> None:
    """mailbox_import_start committed a job: run it in the worker (connected by ready())."""
    import_mailboxes.delay(import_id)
