"""Delivery events: collected from each node's event agent, folded into recipient statuses."""

import datetime as dt
import json
import sqlite3
import uuid
from pathlib import Path

from django.db import transaction
from django.db.models import Q

from delivery.models import (
    ApplicationSender,
    DeliveryEvent,
    EventCursor,
    Message,
    Recipient,
    RecipientKind,
    RecipientStatus,
    Via,
)
from delivery.services.suppressions import suppress_hard_bounce
from delivery.services.webhooks import webhooks_fan_out
from mailboxes.models import Domain
from mailboxes.selectors import live_domain_q
from mailhost.backend.events import prune_forwarded

FINAL = frozenset({RecipientStatus.DELIVERED, RecipientStatus.BOUNCED, RecipientStatus.EXPIRED,
                   RecipientStatus.SUPPRESSED})
BATCH = 1000
_COLUMNS = "id, message, recipient, status, at, dsn, reply, relay, tls, source, next_attempt"


def _read(store: Path, after: int) -> list[tuple]:
    if not store.exists():
        return []
    conn = sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=10)
    try:
        return conn.execute(
            f"SELECT {_COLUMNS} FROM events WHERE id > ? ORDER BY id LIMIT ?",  # noqa: S608
            (after, BATCH),
        ).fetchall()
    except sqlite3.OperationalError:  # no table (or column) yet: the agent has not run
        return []
    finally:
        conn.close()


def next_status(current: str, new: str) -> str:
    """Attempts never undo an outcome; a bounce does (a late DSN after the remote's 250)."""
    if current in FINAL and new != RecipientStatus.BOUNCED:
        return current
    if current == RecipientStatus.SUPPRESSED:
        return current
    return new


def events_collect(*, node_name: str, store: Path) -> int:
    """Take the node's new events (up to BATCH) into the database; returns how many. The cursor
    moves in the same transaction as the rows it covers, and each node event is unique, so a
    collection that dies or runs twice at once neither loses nor doubles one."""
    with transaction.atomic():
        cursor, _ = EventCursor.objects.get_or_create(node_name=node_name)
        cursor = EventCursor.objects.select_for_update().get(pk=cursor.pk)
        rows = _read(store, cursor.last_id)
        if not rows:
            return 0
        _record_submissions(node_name, [row for row in rows if row[9] == "sub"])
        messages = _messages({row[1] for row in rows})
        events = [_event(node_name, row, messages[row[1]]) for row in rows if row[1] in messages]
        DeliveryEvent.objects.bulk_create(events, ignore_conflicts=True)
        _fold(events)
        saved = DeliveryEvent.objects.filter(  # with their ids (bulk_create may not set them)
            node_name=node_name, node_event_id__in=[e.node_event_id for e in events],
        ).select_related("message").prefetch_related("message__tags")
        webhooks_fan_out(list(saved))
        cursor.last_id = rows[-1][0]
        cursor.save(update_fields=["last_id"])
    # Collected: the node need not keep them (after the commit; a failure here only leaves
    # them for the next round, which skips them by the cursor and prunes again).
    prune_forwarded(store, cursor.last_id)
    return len(events)


def _record_submissions(node_name: str, rows: list[tuple]) -> None:
    """A message submitted over SMTP or with sendmail becomes a Message of the organisation
    whose hosted, live domain its envelope sender is on (else it is not ours to show)."""
    details = {}
    for row in rows:
        try:
            details[uuid.UUID(hex=row[1])] = json.loads(row[6])
        except (ValueError, TypeError):
            continue
    names = {d.get("sender", "").rpartition("@")[2] for d in details.values()}
    domains = {d.name: d for d in Domain.objects.filter(live_domain_q(), name__in=names)}
    existing = set(Message.objects.filter(id__in=details).values_list("id", flat=True))
    Message.objects.bulk_create([
        Message(id=message_id, organisation_id=domain.organisation_id, domain=domain,
                sender=detail["sender"][:254], via=detail.get("via", Via.SMTP)[:8],
                login=str(detail.get("login", ""))[:254],
                message_id=str(detail.get("message_id", ""))[:300],
                size=max(int(detail.get("size") or 0), 0),
                queue_id=str(detail.get("queue_id", ""))[:32])
        for message_id, detail in details.items()
        if message_id not in existing
        and (domain := domains.get(detail.get("sender", "").rpartition("@")[2]))
    ], ignore_conflicts=True)
    _note_last_use(rows, details)


def _note_last_use(rows: list[tuple], details: dict) -> None:
    """An application sender's last use: its latest submission the agent saw."""
    latest: dict[str, dt.datetime] = {}
    for row in rows:
        detail = details.get(_uuid(row[1])) or {}
        login, at = str(detail.get("login", "")), dt.datetime.fromisoformat(row[4])
        if login and (login not in latest or at > latest[login]):
            latest[login] = at
    for login, at in latest.items():
        ApplicationSender.objects.filter(login=login).filter(
            Q(last_used_at=None) | Q(last_used_at__lt=at)).update(last_used_at=at)


def _uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(hex=value)
    except (ValueError, TypeError):
        return None


def _messages(hex_ids: set[str]) -> dict[str, Message]:
    ids = []
    for value in hex_ids:
        try:
            ids.append(uuid.UUID(hex=value))
        except ValueError:
            continue
    return {m.id.hex: m for m in Message.objects.filter(id__in=ids)}


def _event(node_name: str, row: tuple, message: Message) -> DeliveryEvent:
    node_id, _, recipient, status, at, dsn, reply, relay, tls, source, next_at = row
    if source == "sub":  # the agent's record of a submission: say it in words on the timeline
        reply = f"submitted by {message.login} ({message.via})"
    return DeliveryEvent(
        message=message, recipient=recipient, status=status, at=dt.datetime.fromisoformat(at),
        dsn=dsn, reply=reply, relay=relay, tls=tls, source=source, node_name=node_name,
        node_event_id=node_id,
        next_attempt_at=dt.datetime.fromisoformat(next_at) if next_at else None,
    )


def _fold(events: list[DeliveryEvent]) -> None:
    """Each recipient's status after these events, in the order the node saw them."""
    by_message: dict = {}
    recipients = Recipient.objects.filter(message__in={e.message_id for e in events})
    for recipient in recipients.select_related("message__organisation"):
        by_message.setdefault(recipient.message_id, {})[recipient.address] = recipient
    changed = {}
    for event in events:
        recipients = by_message.setdefault(event.message_id, {})
        if event.recipient and event.recipient not in recipients \
                and event.message.via != Via.API:  # a submission's recipients come as seen
            recipients[event.recipient] = Recipient.objects.get_or_create(
                message_id=event.message_id, address=event.recipient,
                defaults={"kind": RecipientKind.ENVELOPE, "updated_at": event.at})[0]
        targets = [recipients[event.recipient]] if event.recipient in recipients else (
            list(recipients.values()) if not event.recipient else [])
        for recipient in targets:
            status = next_status(recipient.status, event.status)
            if status != recipient.status:
                recipient.status, recipient.updated_at = status, event.at
                changed[recipient.pk] = recipient
    Recipient.objects.bulk_update(changed.values(), ["status", "updated_at"])
    messages = {r.message_id: r.message for r in changed.values()}
    for event in events:
        if event.status == RecipientStatus.BOUNCED and event.message_id in messages:
            suppress_hard_bounce(message=messages[event.message_id], recipient=event.recipient,
                                 dsn=event.dsn, reply=event.reply)
