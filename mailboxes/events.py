"""Signals mailboxes' services send, so that a reaction which belongs elsewhere (another app,
or a task that itself calls the services) is connected to them rather than imported by them.

- `domain_created` (domain=): sent inside domain_create's transaction, once the row exists;
  identity gives the domain its first DKIM key (identity.signals).
- `import_queued` (import_id=): sent after the import's transaction committed;
  mailboxes.import_tasks enqueues the job.
"""

from django.dispatch import Signal

domain_created = Signal()
import_queued = Signal()
