"""The Celery task behind bulk CSV import (listed in CELERY_IMPORTS so the worker loads it)."""

from celery import shared_task


@shared_task(name="mailboxes.import_mailboxes")
def import_mailboxes(import_id: int) -> int:
    """Run a queued mailbox import; returns how many mailboxes it created."""
    from mailboxes.services import mailbox_import_run

    return mailbox_import_run(import_id=import_id).created
