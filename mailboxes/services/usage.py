"""Storage use: what the nodes report of each mailbox."""

from django.utils import timezone

from mailboxes.models import (
    Mailbox,
)

# --- usage ------------------------------------------------------------------------------------


def mailbox_usage_record(*, node_id: int, usage: dict[str, int], now=None) -> int:
    """Store what the node reported as each mailbox's storage in use; returns how many rows
    changed. Telemetry, not a change of desired state: no revision, no audit event."""
    now = now or timezone.now()
    live = Mailbox.objects.filter(domain__node_id=node_id, deleted_at=None)
    changed = []
    for mailbox in live.select_related("domain").only(
        "pk", "local_part", "domain__name", "used_bytes"
    ).iterator(chunk_size=5000):
        used = usage.get(mailbox.address)
        if used is not None and used != mailbox.used_bytes:
            mailbox.used_bytes, mailbox.usage_at = used, now
            changed.append(mailbox)
    Mailbox.objects.bulk_update(changed, ["used_bytes", "usage_at"], batch_size=1000)
    return len(changed)
