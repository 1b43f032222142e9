"""Mail submitted over SMTP (a mailbox's login) is recorded like the API's: a message of its
organisation with each envelope recipient's outcome, in the same list and timeline."""

import pytest
from django.test import Client

from delivery.models import Message
from delivery.tasks import collect_events
from tests.delivery.support import internet_address
from tests.factories import MembershipFactory
from tests.inbound.conftest import PASSWORD
from tests.stack import make_message, smtp_send, wait_for

pytestmark = pytest.mark.stack


def test_a_submitted_message_gets_a_record_and_a_timeline(sender, mail_stack, internet):
    hosted, client = sender()
    news = hosted.address("news")
    alive, dead = internet_address("judy"), internet_address("nouser-karl")
    smtp_send(mail_stack, "submission", news, [alive, dead],
              make_message(news, alive, "By SMTP"), login=(news, PASSWORD))

    def recorded():
        collect_events()
        message = Message.objects.filter(organisation=hosted.domain.organisation,
                                         sender=news).first()
        if message is None:
            return None
        body = client.get(f"/messages/{message.id.hex}").json()
        statuses = {r["address"]: r["status"] for r in body["recipients"]}
        return body if statuses == {alive: "delivered", dead: "bounced"} else None

    body = wait_for(recorded, timeout=40, interval=0.2)
    assert body["via"] == "smtp" and body["login"] == news and body["message_id"].endswith(">")
    assert {r["kind"] for r in body["recipients"]} == {"env"}
    timeline = [(e["status"], e["recipient"]) for e in body["events"]]
    assert timeline[0] == ("queued", "") and "submitted by" in body["events"][0]["reply"]
    listed = client.get("/messages", {"recipient": alive}).json()["items"]
    assert [m["id"] for m in listed] == [body["id"]]

    organisation = hosted.domain.organisation
    admin = MembershipFactory(organisation=organisation, role="viewer").user
    browser = Client()
    browser.force_login(admin)
    page = browser.get(f"/mail-admin/{organisation.slug}/sent/", {"recipient": alive})
    assert f"SMTP: {news}" in page.content.decode()
