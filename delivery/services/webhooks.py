"""Webhooks: an organisation's endpoints, told about each delivery event of its messages.

Each event becomes one WebhookDelivery per endpoint that wants it, in the transaction that
collects the event, so none is lost or doubled. An attempt claims its row (a short lease, so
two workers never post it at once), POSTs it signed, and records the answer; a failure waits
MAILHOST_WEBHOOK_RETRY_SECONDS, doubling each time, and after MAILHOST_WEBHOOK_MAX_ATTEMPTS the
delivery is dead: kept, shown in the portal and the API, and replayable.
"""

import datetime as dt
import http.client
import ipaddress
import json
import logging
import secrets
import time

import dns.exception
import dns.resolver
from celery import current_app
from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from delivery import hooks
from delivery.models import (
    DeliveryEvent,
    RecipientStatus,
    Webhook,
    WebhookDelivery,
    WebhookState,
)
from identity.addresses import Network, parse_networks
from identity.verify import make_resolver
from mailhost.crypto import decrypt, encrypt
from mailhost.errors import Invalid, NotFound
from tenants.access import Actor, require_read, require_write
from tenants.audit import audit_record
from tenants.models import Organisation

logger = logging.getLogger(__name__)
MAX_WEBHOOKS = 10  # per organisation
MAX_BACKOFF = 6 * 3600
EVENTS = list(RecipientStatus.values)


def allowed_networks() -> list[Network]:
    return parse_networks(settings.MAILHOST_WEBHOOK_ALLOWED_NETWORKS)


def resolve(name: str) -> list:
    """A name's A and AAAA addresses through the portal's resolvers (MAILHOST_DNS_RESOLVERS),
    within MAILHOST_DNS_LIFETIME_MS each: a slow DNS server never holds a worker for long."""
    resolver = make_resolver(settings.MAILHOST_DNS_RESOLVERS,
                             timeout_ms=settings.MAILHOST_DNS_TIMEOUT_MS,
                             lifetime_ms=settings.MAILHOST_DNS_LIFETIME_MS)
    addresses = []
    for rdtype in ("A", "AAAA"):
        try:
            answer = resolver.resolve(name, rdtype, search=False)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            continue
        except dns.exception.DNSException as exc:
            raise hooks.Refused(f"The host {name} could not be resolved ({type(exc).__name__}); "
                                "try again later.") from None
        addresses += [ipaddress.ip_address(rr.address) for rr in answer]
    return addresses


def check_url(url: str) -> str:
    """The URL, if the portal may call it now; Invalid (422) naming why not."""
    try:
        target = hooks.parse(url)
        hooks.pinned_address(target, allowed_networks(), resolve)
    except hooks.Refused as exc:
        raise Invalid(str(exc), field="url") from None
    return url.strip()


def webhook_create(*, actor: Actor, organisation: Organisation, url: str,
                   events: list[str] | None = None) -> tuple[Webhook, str]:
    """A new endpoint and its signing secret (returned once, stored encrypted)."""
    require_write(actor, organisation.id)
    url = check_url(url)
    wanted = sorted(set(events or []))
    unknown = [e for e in wanted if e not in EVENTS]
    if unknown:
        raise Invalid(f"Unknown event {unknown[0]!r}; choose from {', '.join(EVENTS)}.",
                      field="events")
    secret = "whsec_" + secrets.token_urlsafe(32)
    with transaction.atomic():
        if Webhook.objects.filter(organisation=organisation).count() >= MAX_WEBHOOKS:
            raise Invalid(f"An organisation has at most {MAX_WEBHOOKS} webhooks.", field="url")
        webhook = Webhook.objects.create(organisation=organisation, url=url, events=wanted,
                                         secret=encrypt(secret.encode()))
        audit_record(actor=actor, organisation_id=organisation.id, action="webhook.create",
                     target_type="webhook", target=str(webhook.pk),
                     after={"url": url, "events": wanted})
    return webhook, secret


def webhook_list(actor: Actor, organisation: Organisation) -> QuerySet[Webhook]:
    require_read(actor, organisation.id)
    return Webhook.objects.filter(organisation=organisation)


def webhook_delete(*, actor: Actor, organisation: Organisation, webhook_id: int) -> None:
    require_write(actor, organisation.id)
    with transaction.atomic():
        deleted, _ = Webhook.objects.filter(organisation=organisation, pk=webhook_id).delete()
        if not deleted:
            raise NotFound("That webhook was not found.")
        audit_record(actor=actor, organisation_id=organisation.id, action="webhook.delete",
                     target_type="webhook", target=str(webhook_id))


def webhook_deliveries(actor: Actor, organisation: Organisation, *, webhook_id: int | None = None,
                       state: str | None = None) -> QuerySet[WebhookDelivery]:
    require_read(actor, organisation.id)
    deliveries = WebhookDelivery.objects.filter(webhook__organisation=organisation)
    if webhook_id is not None:
        deliveries = deliveries.filter(webhook_id=webhook_id)
    if state:
        deliveries = deliveries.filter(state=state)
    return deliveries.select_related("webhook")


def webhook_replay(*, actor: Actor, organisation: Organisation, delivery_id: int
                   ) -> WebhookDelivery:
    """Send a delivery again (dead, or delivered and wanted again): a fresh round of attempts,
    the same payload and event id."""
    require_write(actor, organisation.id)
    with transaction.atomic():
        delivery = WebhookDelivery.objects.select_for_update().filter(
            webhook__organisation=organisation, pk=delivery_id).first()
        if delivery is None:
            raise NotFound("That webhook delivery was not found.")
        delivery.state, delivery.attempts = WebhookState.PENDING, 0
        delivery.next_attempt_at = timezone.now()
        delivery.save(update_fields=["state", "attempts", "next_attempt_at"])
        audit_record(actor=actor, organisation_id=organisation.id, action="webhook.replay",
                     target_type="webhook_delivery", target=str(delivery.pk))
        transaction.on_commit(lambda: enqueue([delivery.pk]))
    return delivery


# --- fan-out and attempts --------------------------------------------------------------------

def payload(event: DeliveryEvent) -> dict:
    message = event.message
    return {
        "id": f"evt_{event.pk}",
        "type": f"message.{event.status}",
        "created_at": event.at.isoformat(),
        "data": {
            "message": message.id.hex, "from": message.sender, "subject": message.subject,
            "recipient": event.recipient, "status": event.status, "dsn": event.dsn,
            "reply": event.reply, "relay": event.relay, "tls": event.tls,
            "tags": sorted(t.name for t in message.tags.all()), "metadata": message.metadata,
        },
    }


def webhooks_fan_out(events: list[DeliveryEvent]) -> int:
    """Inside the collecting transaction: one delivery per (event, endpoint that wants it);
    the attempts are queued once it commits."""
    organisations = {e.message.organisation_id for e in events}
    webhooks: dict[int, list[Webhook]] = {}
    for webhook in Webhook.objects.filter(organisation_id__in=organisations, active=True):
        webhooks.setdefault(webhook.organisation_id, []).append(webhook)
    rows = [
        WebhookDelivery(webhook=webhook, event=event, payload=payload(event))
        for event in events for webhook in webhooks.get(event.message.organisation_id, [])
        if webhook.wants(event.status)
    ]
    if rows:
        WebhookDelivery.objects.bulk_create(rows, ignore_conflicts=True)
        transaction.on_commit(lambda: enqueue(None))
    return len(rows)


def enqueue(delivery_ids: list[int] | None) -> None:
    """Queue attempts (None: every due one). A lost message is picked up by the periodic
    sweep (delivery.webhooks_due), so a broker outage delays a webhook, never drops it."""
    try:
        if delivery_ids is None:
            current_app.send_task("delivery.webhooks_due")
        for delivery_id in delivery_ids or []:
            current_app.send_task("delivery.deliver_webhook", args=[delivery_id])
    except Exception as exc:  # the broker is down: the periodic sweep sends them later
        logger.warning("webhook attempts not queued: %s", exc)


def due_ids(limit: int = 500) -> list[int]:
    return list(WebhookDelivery.objects.filter(
        state=WebhookState.PENDING, next_attempt_at__lte=timezone.now(),
    ).order_by("next_attempt_at").values_list("pk", flat=True)[:limit])


def backoff(attempts: int) -> int:
    """Seconds before attempt `attempts + 1`: the base, doubling, at most six hours."""
    return min(settings.MAILHOST_WEBHOOK_RETRY_SECONDS * 2 ** max(attempts - 1, 0), MAX_BACKOFF)


def webhook_attempt(delivery_id: int) -> str | None:
    """One attempt, if the delivery is due and nobody else holds it; its state afterwards."""
    now = timezone.now()
    timeout = settings.MAILHOST_WEBHOOK_TIMEOUT_SECONDS
    lease = now + dt.timedelta(seconds=timeout + 60)
    claimed = WebhookDelivery.objects.filter(
        pk=delivery_id, state=WebhookState.PENDING, next_attempt_at__lte=now,
    ).update(next_attempt_at=lease)
    if not claimed:
        return None
    delivery = WebhookDelivery.objects.select_related("webhook").filter(pk=delivery_id).first()
    if delivery is None:  # its webhook was removed meanwhile
        return None
    status, error = _post(delivery, timeout)
    delivery.attempts += 1
    delivery.last_status, delivery.last_error = status, error[:500]
    if status is not None and 200 <= status < 300:
        delivery.state, delivery.delivered_at = WebhookState.DELIVERED, timezone.now()
        delivery.last_error = ""
    elif delivery.attempts >= settings.MAILHOST_WEBHOOK_MAX_ATTEMPTS:
        delivery.state = WebhookState.DEAD
    else:
        delivery.next_attempt_at = timezone.now() + dt.timedelta(
            seconds=backoff(delivery.attempts))
    delivery.save(update_fields=["attempts", "last_status", "last_error", "state",
                                 "delivered_at", "next_attempt_at"])
    return delivery.state


def _post(delivery: WebhookDelivery, timeout: float) -> tuple[int | None, str]:
    webhook = delivery.webhook
    body = json.dumps(delivery.payload, separators=(",", ":"), sort_keys=True).encode()
    timestamp = int(time.time())
    headers = {
        "Mailhost-Event-Id": delivery.payload["id"],
        "Mailhost-Timestamp": str(timestamp),
        "Mailhost-Signature": hooks.sign(decrypt(webhook.secret), timestamp, body),
    }
    try:
        target = hooks.parse(webhook.url)
        address = hooks.pinned_address(target, allowed_networks(), resolve)
        status, answer = hooks.post(target, address, body, headers, timeout=timeout)
    except hooks.Refused as exc:
        return None, str(exc)
    except (OSError, http.client.HTTPException) as exc:
        return None, f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return status, "" if 200 <= status < 300 else f"HTTP {status}: {answer}"
