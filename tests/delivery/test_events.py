"""Delivery events on the real stack: the node's event agent follows Postfix's log and takes
VERP bounces; the portal collects them into each message's timeline and recipient statuses."""

import datetime as dt
import os
import signal
import sqlite3
from pathlib import Path

import pytest

from delivery.models import DeliveryEvent, EventCursor, Recipient
from delivery.tasks import collect_events
from mailhost.backend.config import EVENTS_DB
from mailhost.backend.stack import Stack
from tests.delivery.support import internet_address
from tests.inbound.support import Client, deliver_from_internet
from tests.stack import wait_for

pytestmark = pytest.mark.stack


def send(client, hosted, *to, **extra) -> str:
    response = client.post("/messages", {"from": hosted.address("news"), "to": list(to),
                                         "subject": "Status", "text": "Hi.\n", **extra})
    assert response.status_code == 202, response.content
    return response.json()["id"]


def timeline(client, message_id: str, until: str, recipient: str | None = None,
             stack: Stack | None = None) -> dict:
    """The message once `recipient` (or the message) reached `until`, collecting events as
    the Celery task would. On a timeout, `stack`'s Postfix log says why."""

    def reached():
        collect_events()
        body = client.get(f"/messages/{message_id}").json()
        statuses = {r["address"]: r["status"] for r in body["recipients"]}
        done = statuses.get(recipient) == until if recipient else body["status"] == until
        return body if done else None

    try:
        return wait_for(reached, timeout=40, interval=0.2)
    except AssertionError as timeout:
        if stack is None:
            raise
        raise AssertionError(f"{timeout}\n{stack.log_tails()}") from None


def test_it_shows_deferred_then_delivered(sender, internet, stack_node, mail_stack):
    hosted, client = sender()
    to = internet_address("defer-1-bob")
    message_id = send(client, hosted, to)
    body = timeline(client, message_id, "delivered", stack=mail_stack)
    events = [(e["status"], e["recipient"]) for e in body["events"] if e["source"] == "log"]
    assert events == [("deferred", to), ("delivered", to)]
    deferred, delivered = (e for e in body["events"] if e["source"] == "log")
    assert "451 4.2.0" in deferred["reply"] and deferred["dsn"].startswith("4.")
    # The next attempt: the test node's backoff is 1 to 2 seconds (minimal/maximal_backoff_time).
    waited = dt.datetime.fromisoformat(deferred["next_attempt_at"]) - \
        dt.datetime.fromisoformat(deferred["at"])
    assert dt.timedelta(seconds=1) <= waited <= dt.timedelta(seconds=2)
    assert delivered["next_attempt_at"] is None
    assert delivered["dsn"] == "2.0.0" and "queued at the fake MX" in delivered["reply"]
    assert "127.0.0.1" in delivered["relay"] and delivered["tls"] == "none"
    assert len(internet.received_by(to)) == 1
    # Collected events are gone from the node: its store holds only what is not collected yet.
    cursor = EventCursor.objects.get(node_name=stack_node.name)
    with sqlite3.connect(Path(stack_node.state_dir) / EVENTS_DB) as conn:
        assert conn.execute("SELECT count(*) FROM events WHERE id <= ?",
                            (cursor.last_id,)).fetchone()[0] == 0


def test_it_bounces_a_511_and_matches_the_verp_bounce(sender, internet):
    hosted, client = sender()
    good, dead = internet_address("carol"), internet_address("nouser-dave")
    message_id = send(client, hosted, good, dead)

    def both_seen():
        # Postfix's attempt (its log) and its bounce back to the VERP address (LMTP) reach
        # the agent by two roads; either may be recorded first.
        collect_events()
        body = client.get(f"/messages/{message_id}").json()
        sources = {e["source"] for e in body["events"] if e["recipient"] == dead}
        return body if sources == {"log", "dsn"} else None

    body = wait_for(both_seen, timeout=40, interval=0.3)
    statuses = {r["address"]: r["status"] for r in body["recipients"]}
    assert statuses[dead] == "bounced"
    bounce = next(e for e in body["events"] if e["recipient"] == dead and e["source"] == "log")
    assert bounce["status"] == "bounced" and bounce["dsn"] == "5.1.1"
    assert "User unknown" in bounce["reply"]
    # Postfix's own bounce came back to bounces+<id>@<domain>: matched to the message.
    dsn = next(e for e in body["events"] if e["source"] == "dsn")
    assert dsn["recipient"] == dead and dsn["status"] == "bounced" and dsn["dsn"] == "5.1.1"
    assert timeline(client, message_id, "delivered", recipient=good)


def test_it_matches_a_late_bounce_from_the_internet(sender, internet, mail_stack):
    hosted, client = sender()
    to = internet_address("erin")
    message_id = send(client, hosted, to)
    timeline(client, message_id, "delivered")
    dsn = (
        f"From: MAILER-DAEMON@mx.remote.example\r\nTo: bounces+{message_id}@{hosted.name}\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\nMIME-Version: 1.0\r\n"
        "Content-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\r\n\r\n"
        "--b\r\nContent-Type: text/plain\r\n\r\nThe mailbox is full.\r\n"
        "--b\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.remote.example\r\n\r\n"
        f"Final-Recipient: rfc822; {to}\r\nAction: failed\r\nStatus: 5.2.2\r\n"
        "Remote-MTA: dns; store.remote.example\r\n"
        "Diagnostic-Code: smtp; 552 5.2.2 mailbox full\r\n\r\n--b--\r\n"
    )
    deliver_from_internet(mail_stack, Client("192.0.2.77", "mx.remote.example"), "",
                       f"bounces+{message_id}@{hosted.name}", dsn.encode())
    body = timeline(client, message_id, "bounced", recipient=to)
    late = [e for e in body["events"] if e["source"] == "dsn"]
    assert [(e["recipient"], e["dsn"], e["relay"]) for e in late] == [
        (to, "5.2.2", "store.remote.example")]
    assert "mailbox full" in late[0]["reply"]


def test_it_neither_loses_nor_doubles_events_when_the_agent_is_killed(sender, internet,
                                                                      mail_stack):
    hosted, client = sender()
    recipients = [internet_address(f"r{i}") for i in range(12)]
    ids = []
    for i, to in enumerate(recipients):
        ids.append(send(client, hosted, to))
        if i == 5:  # mid-stream: some attempts recorded, more being logged
            os.kill(mail_stack.pid("event-agent"), signal.SIGKILL)
    wait_for(lambda: all(internet.received_by(to) for to in recipients), timeout=40)
    mail_stack.start()  # brings the agent back; it resumes at its stored position

    def all_delivered():
        collect_events()
        return Recipient.objects.filter(address__in=recipients, status="delivered").count() \
            == len(recipients)

    wait_for(all_delivered, timeout=40, interval=0.2)
    for message_id in ids:
        events = DeliveryEvent.objects.filter(message_id=message_id, source="log")
        assert [e.status for e in events] == ["delivered"], message_id
