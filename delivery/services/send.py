"""Sending: bind From to the organisation, build the message, inject it, record it."""

import hashlib
import json
import uuid
from dataclasses import asdict, dataclass

from django.db import IntegrityError, transaction
from django.utils import timezone

from delivery import node
from delivery.models import Message, MessageTag, Recipient, RecipientStatus, verp_address
from delivery.services.compose import Draft, compose
from delivery.services.suppressions import suppressed_among
from mailboxes.models import Alias, Domain, Mailbox
from mailboxes.selectors import live_domain_q
from mailhost.errors import Invalid
from mailhost.names import InvalidName, split_address
from tenants.access import Actor, require_write
from tenants.models import Organisation


@dataclass(frozen=True)
class Sent:
    message: Message
    replayed: bool  # an earlier request with the same Idempotency-Key made it


def sending_domain(organisation: Organisation, address: str) -> Domain:
    """The organisation's live, verified domain of `address`, if the address is a mailbox
    (active) or an active alias there; Invalid otherwise. Another tenant's domain gets the same
    answer as a domain nobody hosts."""
    refusal = Invalid(
        f"<{address}> is not an address this organisation may send as: use a mailbox or "
        "alias of one of its verified, active domains.",
        field="from",
        code="sender_not_allowed",
    )
    try:
        local, name = split_address(address)
    except InvalidName as exc:
        raise refusal from exc
    domain = Domain.objects.filter(live_domain_q(), organisation=organisation, name=name).first()
    if domain is None:
        raise refusal
    if not (
        Mailbox.objects.filter(domain=domain, local_part=local, status="active",
                               deleted_at=None).exists()
        or Alias.objects.filter(domain=domain, local_part=local, active=True).exists()
    ):
        raise refusal
    return domain


def fingerprint(draft: Draft) -> str:
    """A digest of the request: the same Idempotency-Key with another request is refused."""
    values = asdict(draft)
    values["attachments"] = [
        [a.filename, a.content_type, hashlib.sha256(a.content).hexdigest()]
        for a in draft.attachments
    ]
    blob = json.dumps(values, sort_keys=True, separators=(",", ":"), default=list)
    return hashlib.sha256(blob.encode()).hexdigest()


def _replay(organisation: Organisation, key: str, digest: str) -> Sent | None:
    existing = Message.objects.filter(organisation=organisation, idempotency_key=key).first()
    if existing is None:
        return None
    if existing.fingerprint != digest:
        raise Invalid(
            "This Idempotency-Key was already used for a different message; use a new key.",
            field="Idempotency-Key",
            code="idempotency_key_reused",
        )
    return Sent(existing, replayed=True)


def message_send(
    *, actor: Actor, organisation: Organisation, draft: Draft, idempotency_key: str = ""
) -> Sent:
    """Send `draft` as the organisation; recipients it suppresses are recorded as suppressed
    and never sent to. With an Idempotency-Key, the first request with it
    sends and every later (or concurrent) one with the same request gets the same message:
    the message row is written before the node gets the message, in one transaction, and the
    unique (organisation, key) constraint lets exactly one of concurrent requests commit."""
    require_write(actor, organisation.id)
    domain = sending_domain(organisation, draft.sender)
    digest = fingerprint(draft)
    if idempotency_key and (sent := _replay(organisation, idempotency_key, digest)):
        return sent
    suppressed = suppressed_among(organisation, [a for a, _ in draft.recipients])
    message_uuid = uuid.uuid4()
    header_id = f"<{message_uuid.hex}@{domain.name}>"
    raw = compose(draft, message_id=header_id)
    try:
        with transaction.atomic():
            message = _record(organisation, domain, draft, message_uuid, header_id, raw,
                              idempotency_key, digest, suppressed)
            sendable = [address for address, _ in draft.recipients if address not in suppressed]
            if sendable:
                # Inside the transaction: if the node does not take it, no row says it was sent.
                message.queue_id = node.inject(
                    domain.node, envelope_from=verp_address(message_uuid, domain.name),
                    recipients=sendable, raw=raw,
                )
                message.save(update_fields=["queue_id"])
    except IntegrityError:
        if idempotency_key and (sent := _replay(organisation, idempotency_key, digest)):
            return sent
        raise
    return Sent(message, replayed=False)


def _record(organisation, domain, draft: Draft, message_uuid, header_id, raw, key, digest,
            suppressed: set[str]):
    message = Message.objects.create(
        id=message_uuid, organisation=organisation, domain=domain, sender=draft.sender,
        subject=draft.subject, message_id=header_id, size=len(raw),
        metadata=dict(draft.metadata), idempotency_key=key, fingerprint=digest,
        created_at=timezone.now(),
    )
    Recipient.objects.bulk_create(
        Recipient(message=message, address=address, kind=kind,
                  status=RecipientStatus.SUPPRESSED if address in suppressed
                  else RecipientStatus.QUEUED)
        for address, kind in draft.recipients
    )
    MessageTag.objects.bulk_create(MessageTag(message=message, name=tag) for tag in draft.tags)
    return message
