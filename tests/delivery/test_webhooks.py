"""Webhooks: delivery events POSTed, signed, to an organisation's endpoint (a real HTTP server
on loopback, allowed as staff would allow an internal network); failures retried with a
growing wait and dead after the last attempt, then replayed from the API and the portal; and
the portal never made to call its own network."""

import hashlib
import hmac
import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.db import transaction
from django.test import Client
from django.utils import timezone

from delivery.models import DeliveryEvent, Message, Recipient, Webhook, WebhookDelivery
from delivery.services.webhooks import backoff, due_ids, webhook_attempt, webhooks_fan_out
from delivery.tasks import collect_events
from tests.api.conftest import ApiClient, make_token
from tests.delivery.support import internet_address
from tests.factories import DomainFactory, MembershipFactory, OrganisationFactory
from tests.stack import wait_for


class Endpoint:
    """A receiver: records every request; answers with the next of `answers` (then 200)."""

    def __init__(self):
        self.requests: list[dict] = []
        self.answers: list[int] = []
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                endpoint.requests.append({"headers": dict(self.headers), "body": body,
                                          "path": self.path})
                self.send_response(endpoint.answers.pop(0) if endpoint.answers else 200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/mail?x=1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def endpoint(settings):
    settings.MAILHOST_WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    receiver = Endpoint()
    yield receiver
    receiver.close()


def verify(secret: str, request: dict) -> dict:
    """What a receiver does (docs/api.md): recompute the signature, check the timestamp."""
    timestamp = request["headers"]["Mailhost-Timestamp"]
    expected = "v1=" + hmac.new(secret.encode(), timestamp.encode() + b"." + request["body"],
                                hashlib.sha256).hexdigest()
    assert hmac.compare_digest(request["headers"]["Mailhost-Signature"], expected)
    assert abs(time.time() - int(timestamp)) < 300
    return json.loads(request["body"])


def run_due():
    for delivery_id in due_ids():
        webhook_attempt(delivery_id)


@pytest.mark.stack
def test_a_delivery_is_posted_signed_to_the_endpoint(sender, internet, endpoint):
    hosted, client = sender()
    created = client.post("/webhooks", {"url": endpoint.url, "events": ["delivered"]})
    assert created.status_code == 201, created.content
    secret = created.json()["secret"]
    to = internet_address("heidi")
    sent = client.post("/messages", {"from": hosted.address("news"), "to": [to],
                                     "subject": "Hook", "text": "Hi.\n", "tags": ["welcome"]})
    assert sent.status_code == 202, sent.content

    def posted():
        collect_events()
        run_due()
        return endpoint.requests

    request = wait_for(posted, timeout=40, interval=0.2)[0]
    body = verify(secret, request)
    assert request["path"] == "/hooks/mail?x=1"
    assert body["type"] == "message.delivered"
    assert body["data"]["message"] == sent.json()["id"] and body["data"]["recipient"] == to
    assert body["data"]["tags"] == ["welcome"] and body["data"]["relay"]
    assert request["headers"]["Mailhost-Event-Id"] == body["id"]
    # Only what it asked for: the queued/deferred events of that message were not posted.
    assert len(endpoint.requests) == 1
    listed = client.get("/webhook-deliveries").json()["items"]
    assert [(d["event"], d["state"], d["attempts"]) for d in listed] == [(body["id"],
                                                                           "delivered", 1)]


# --- without the mail stack: an event made by hand -------------------------------------------

def organisation_with_event(status="bounced"):
    domain = DomainFactory()
    organisation = domain.organisation
    message = Message.objects.create(organisation=organisation, domain=domain,
                                     sender=f"news@{domain.name}", subject="S",
                                     message_id=f"<x@{domain.name}>", size=10)
    Recipient.objects.create(message=message, address="ivan@example.net", kind="to")
    event = DeliveryEvent.objects.create(
        message=message, recipient="ivan@example.net", status=status, at=timezone.now(),
        dsn="5.1.1", reply="550 5.1.1 no such user", source="log", node_name="n",
        node_event_id=uuid.uuid4().int % 10**12)
    return organisation, event


def fan_out(event):
    with transaction.atomic():
        webhooks_fan_out([DeliveryEvent.objects.select_related("message").get(pk=event.pk)])


@pytest.mark.django_db(transaction=True)
def test_failures_back_off_then_die_then_a_replay_delivers(endpoint, settings):
    settings.MAILHOST_WEBHOOK_MAX_ATTEMPTS, settings.MAILHOST_WEBHOOK_RETRY_SECONDS = 3, 60
    organisation, event = organisation_with_event()
    api = ApiClient(make_token(organisation))
    secret = api.post("/webhooks", {"url": endpoint.url}).json()["secret"]
    endpoint.answers = [500, 503, 404]
    fan_out(event)
    fan_out(event)  # collected twice (it cannot be, but if it were): still one delivery
    delivery = WebhookDelivery.objects.get()

    assert webhook_attempt(delivery.pk) == "pending"
    assert webhook_attempt(delivery.pk) is None  # not due again until its wait is over
    delivery.refresh_from_db()
    assert delivery.attempts == 1 and delivery.last_status == 500
    assert delivery.next_attempt_at > timezone.now()
    assert [backoff(n) for n in (1, 2, 3)] == [60, 120, 240] and backoff(30) == 6 * 3600
    for expected in ("pending", "dead"):
        WebhookDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now())
        assert webhook_attempt(delivery.pk) == expected
    assert len(endpoint.requests) == 3
    dead = api.get("/webhook-deliveries", {"state": "dead"}).json()["items"]
    assert [(d["id"], d["attempts"], d["last_status"]) for d in dead] == [(delivery.pk, 3, 404)]
    assert "HTTP 404" in dead[0]["last_error"]
    WebhookDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now())
    assert webhook_attempt(delivery.pk) is None  # dead stays dead

    replayed = api.post(f"/webhook-deliveries/{delivery.pk}/replay")
    assert replayed.status_code == 202 and replayed.json()["state"] == "pending"
    run_due()
    delivery.refresh_from_db()
    assert delivery.state == "delivered" and delivery.attempts == 1
    ids = {verify(secret, r)["id"] for r in endpoint.requests}
    assert ids == {f"evt_{event.pk}"}  # the same event id each time: the receiver de-dupes


@pytest.mark.django_db(transaction=True)
def test_the_portal_shows_a_dead_delivery_and_replays_it(endpoint, settings):
    settings.MAILHOST_WEBHOOK_MAX_ATTEMPTS = 1
    organisation, event = organisation_with_event()
    admin = MembershipFactory(organisation=organisation, role="admin").user
    browser = Client()
    browser.force_login(admin)
    page = f"/mail-admin/{organisation.slug}/webhooks/"
    added = browser.post(page, {"url": endpoint.url, "events": ["bounced"]})
    assert added.status_code == 201 and b"whsec_" in added.content
    endpoint.answers = [500]
    fan_out(event)
    run_due()
    listing = browser.get(page, {"state": "dead"}).content.decode()
    assert f"evt_{event.pk}" in listing and "HTTP 500" in listing
    delivery = WebhookDelivery.objects.get()
    replay = f"/mail-admin/{organisation.slug}/webhook-deliveries/{delivery.pk}/replay/"
    assert "Send event" in browser.get(replay).content.decode()
    assert browser.post(replay).status_code == 302
    run_due()
    assert WebhookDelivery.objects.get().state == "delivered" and len(endpoint.requests) == 2


@pytest.mark.django_db
@pytest.mark.parametrize("url, why", [
    ("http://127.0.0.1:8000/admin", "a loopback address"),
    ("https://localhost/hook", "a name for a loopback address"),
    ("https://169.254.169.254/latest/meta-data", "a link-local address"),
    ("https://10.1.2.3/hook", "a private address"),
    ("https://[::ffff:127.0.0.1]/hook", "a loopback address"),
    ("https://[64:ff9b::a9fe:a9fe]/hook", "a link-local address (where cloud metadata "
                                          "services live) inside an IPv6 address"),
    ("https://0.0.0.0/hook", "an unspecified address"),
    ("http://93.184.215.14/hook", "must use https://"),
    ("https://user:pass@93.184.215.14/hook", "user name or password"),
    ("file:///etc/passwd", "must be https://"),
    ("gopher://93.184.215.14/", "must be https://"),
])
def test_it_refuses_endpoints_in_the_portals_own_network(url, why):
    organisation = OrganisationFactory()
    answer = ApiClient(make_token(organisation)).post("/webhooks", {"url": url})
    assert answer.status_code == 422 and why in answer.content.decode(), answer.content
    assert not Webhook.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_each_attempt_checks_the_address_again(endpoint, settings):
    """Allowed when added, not when sent (DNS rebinding, or staff narrowed the list): the
    attempt is refused before any connection, and says why."""
    organisation, event = organisation_with_event()
    ApiClient(make_token(organisation)).post("/webhooks", {"url": endpoint.url})
    settings.MAILHOST_WEBHOOK_ALLOWED_NETWORKS = []
    fan_out(event)
    run_due()
    delivery = WebhookDelivery.objects.get()
    assert endpoint.requests == [] and "a loopback address" in delivery.last_error


@pytest.mark.django_db
def test_another_organisation_cannot_see_or_replay_them(endpoint):
    organisation, event = organisation_with_event()
    ApiClient(make_token(organisation)).post("/webhooks", {"url": endpoint.url})
    with transaction.atomic():
        webhooks_fan_out([event])
    delivery = WebhookDelivery.objects.get()
    intruder = ApiClient(make_token(OrganisationFactory()))
    assert intruder.get("/webhook-deliveries").json()["items"] == []
    assert intruder.post(f"/webhook-deliveries/{delivery.pk}/replay").status_code == 404
    assert intruder.delete(f"/webhooks/{delivery.webhook_id}").status_code == 404


def test_a_bad_allowed_network_is_a_system_check_error(settings):
    from delivery.checks import webhook_settings

    settings.MAILHOST_WEBHOOK_ALLOWED_NETWORKS = ["10.0.0.0/8", "not-a-network"]
    assert [e.id for e in webhook_settings(None)] == ["delivery.E001"]


def test_every_address_of_a_name_is_checked_and_the_checked_one_is_used():
    """A name with one public and one private address (a rebinding set-up) is refused; a name
    whose addresses are all public pins the first of them for the connection."""
    import ipaddress

    from delivery import hooks

    target = hooks.parse("https://hooks.example.org/mail")
    public, private = ipaddress.ip_address("93.184.215.14"), ipaddress.ip_address("10.0.0.7")
    with pytest.raises(hooks.Refused, match="a name for a private address"):
        hooks.pinned_address(target, [], lambda name: [public, private])
    assert hooks.pinned_address(target, [], lambda name: [public]) == "93.184.215.14"
    with pytest.raises(hooks.Refused, match="does not resolve"):
        hooks.pinned_address(target, [], lambda name: [])
