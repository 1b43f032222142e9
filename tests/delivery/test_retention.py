"""The portal's delivery records follow MAILHOST_DELIVERY_RETENTION_DAYS: older messages go
with their recipients, timelines and webhook deliveries; suppressions they caused stay."""

import datetime as dt

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.utils import timezone

from delivery.models import DeliveryEvent, Message, Recipient, Suppression, Webhook, WebhookDelivery
from delivery.tasks import purge_records
from tests.factories import DomainFactory

pytestmark = pytest.mark.django_db


def message(domain, age_days: float) -> Message:
    sent = Message.objects.create(organisation=domain.organisation, domain=domain,
                                  sender=f"news@{domain.name}", subject="S", size=1,
                                  message_id=f"<{age_days}@{domain.name}>",
                                  created_at=timezone.now() - dt.timedelta(days=age_days))
    Recipient.objects.create(message=sent, address="ivan@example.net", kind="to")
    event = DeliveryEvent.objects.create(message=sent, recipient="ivan@example.net",
                                         status="bounced", at=sent.created_at, source="log",
                                         node_name="n", node_event_id=int(age_days * 1000))
    hook = Webhook.objects.create(organisation=domain.organisation, url="https://x.example/h",
                                  secret="x")
    WebhookDelivery.objects.create(webhook=hook, event=event, payload={})
    return sent


def test_it_deletes_records_past_the_retention_period_and_keeps_the_rest(settings):
    settings.MAILHOST_DELIVERY_RETENTION_DAYS = 30
    domain = DomainFactory()
    old, recent = message(domain, 31), message(domain, 29)
    Suppression.objects.create(organisation=domain.organisation, scope="address",
                               value="ivan@example.net", reason="hard_bounce", message=old)

    assert purge_records() == 1
    assert list(Message.objects.all()) == [recent]
    assert not Recipient.objects.filter(message_id=old.id).exists()
    assert not DeliveryEvent.objects.filter(message_id=old.id).exists()
    assert WebhookDelivery.objects.count() == 1
    assert Suppression.objects.get().message is None  # the suppression itself stays
    assert purge_records() == 0


def test_it_refuses_a_retention_shorter_than_the_queue_lifetime(settings):
    settings.MAILHOST_DELIVERY_RETENTION_DAYS = 3
    with pytest.raises(SystemCheckError, match="delivery.E003"):
        call_command("check")
