"""The "Sent mail" pages: the organisation's messages, filters, one message's timeline."""

import datetime as dt
import uuid

from django.utils import timezone

from delivery.models import DeliveryEvent, Message, MessageTag, Recipient

BASE = "/mail-admin/acme/sent/"


def make_message(domain, to="customer@example.org", status="delivered", tag="invoice"):
    message = Message.objects.create(
        organisation=domain.organisation, domain=domain, sender=f"news@{domain.name}",
        subject="Your invoice", message_id=f"<{uuid.uuid4().hex}@{domain.name}>", size=1000,
    )
    Recipient.objects.create(message=message, address=to, kind="to", status=status)
    MessageTag.objects.create(message=message, name=tag)
    return message


def test_it_lists_sent_mail_in_constant_queries(owner_client, domain, assert_constant_queries):
    make_message(domain)
    response = assert_constant_queries(
        owner_client, BASE, lambda: [make_message(domain, f"r{i}@example.org") for i in range(10)]
    )
    assert b"customer@example.org" in response.content and b"Delivered" in response.content


def test_it_filters_by_recipient_status_and_tag(viewer_client, domain):
    make_message(domain, "alice@example.org", "delivered", "invoice")
    make_message(domain, "bob@example.org", "bounced", "newsletter")
    for query, shown, hidden in (
        ("recipient=alice", b"alice@", b"bob@"),
        ("status=bounced", b"bob@", b"alice@"),
        ("tag=invoice", b"alice@", b"bob@"),
    ):
        content = viewer_client.get(f"{BASE}?{query}").content
        assert shown in content and hidden not in content, query


def test_it_shows_a_timeline(viewer_client, domain):
    message = make_message(domain, status="bounced")
    DeliveryEvent.objects.create(
        message=message, recipient="customer@example.org", status="bounced", at=timezone.now(),
        dsn="5.1.1", reply="550 5.1.1 User unknown", relay="mx.example.org[192.0.2.1]:25",
        tls="none", source="log", node_name="default", node_event_id=1,
    )
    DeliveryEvent.objects.create(
        message=message, recipient="customer@example.org", status="deferred",
        at=timezone.now(), dsn="4.2.0", reply="451 4.2.0 later", source="log",
        next_attempt_at=dt.datetime(2026, 12, 1, 15, 36, 7, tzinfo=dt.UTC),
        node_name="default", node_event_id=2,
    )
    content = viewer_client.get(f"{BASE}{message.id.hex}/").content
    assert b"550 5.1.1 User unknown" in content and b"mx.example.org" in content
    assert b"next attempt 15:36:07" in content


def test_it_hides_another_tenants_mail(stranger_client, owner_client, domain):
    message = make_message(domain)
    assert stranger_client.get(BASE).status_code == 404
    assert stranger_client.get(f"{BASE}{message.id.hex}/").status_code == 404
    assert stranger_client.get(f"/mail-admin/globex/sent/{message.id.hex}/").status_code == 404
    assert owner_client.get(f"{BASE}{uuid.uuid4().hex}/").status_code == 404
    assert owner_client.get(f"{BASE}not-an-id/").status_code == 404


SUPPRESSIONS = "/mail-admin/acme/suppressions/"


def test_it_adds_lists_and_lifts_suppressions(owner_client, domain):
    response = owner_client.post(SUPPRESSIONS, {"value": "Bob@Example.org", "detail": "asked"})
    assert response.status_code == 302
    assert b"bob@example.org" in owner_client.get(SUPPRESSIONS).content
    bad = owner_client.post(SUPPRESSIONS, {"value": "not a thing"})
    assert bad.status_code == 422 and b"Suppress an address or a domain" in bad.content
    lift = f"{SUPPRESSIONS}bob@example.org/lift/"
    assert owner_client.get(lift).status_code == 200
    assert owner_client.post(lift).status_code == 302
    assert b"Nothing is suppressed" in owner_client.get(SUPPRESSIONS).content


def test_it_lets_a_viewer_read_suppressions_only(viewer_client, stranger_client, domain):
    assert viewer_client.get(SUPPRESSIONS).status_code == 200
    assert viewer_client.post(SUPPRESSIONS, {"value": "x@example.org"}).status_code == 403
    assert viewer_client.post(f"{SUPPRESSIONS}x@example.org/lift/").status_code == 403
    assert stranger_client.get(SUPPRESSIONS).status_code == 404
