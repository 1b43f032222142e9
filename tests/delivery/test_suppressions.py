"""Suppression lists: a hard bounce suppresses the address; the API drops suppressed
recipients and says so; SMTP submission refuses them (5.1.1) from the node's own copy."""

import smtplib

import pytest

from delivery.models import Suppression
from delivery.tasks import collect_events
from nodes.reconcile import reconcile_incremental
from tests.api.conftest import ApiClient, make_token
from tests.delivery.support import internet_address, sender_setup
from tests.inbound.conftest import PASSWORD
from tests.security.two_tenants import forget_rows
from tests.stack import make_message, smtp_send, wait_for

pytestmark = pytest.mark.stack


def send(client, hosted, *to):
    response = client.post("/messages", {"from": hosted.address("news"), "to": list(to),
                                         "subject": "Hello", "text": "Hi.\n"})
    assert response.status_code == 202, response.content
    return response.json()


def test_it_suppresses_a_hard_bounce_and_never_sends_to_it_again(sender, internet):
    hosted, client = sender()
    dead, alive = internet_address("nouser-frank"), internet_address("grace")
    first = send(client, hosted, dead)

    def suppressed():
        collect_events()
        return Suppression.objects.filter(organisation=hosted.domain.organisation,
                                          value=dead).first()

    suppression = wait_for(suppressed, timeout=40, interval=0.2)
    assert suppression.reason == "hard_bounce" and suppression.message_id.hex == first["id"]
    assert "5.1.1" in suppression.detail
    tries = internet.attempts.get(dead, 0)

    second = send(client, hosted, dead, alive)
    assert second["suppressed"] == [dead]
    assert {r["address"]: r["status"] for r in second["recipients"]}[dead] == "suppressed"
    wait_for(lambda: internet.received_by(alive), timeout=30)
    assert internet.attempts.get(dead, 0) == tries  # never reached the MX again

    only = send(client, hosted, dead)
    assert only["status"] == "suppressed" and only["suppressed"] == [dead]


def test_it_manages_the_list_through_the_api(sender, stack_node, mail_stack):
    hosted, client = sender()
    organisation = hosted.domain.organisation
    created = client.post("/suppressions", {"value": "Bob@Example.org", "detail": "asked"})
    assert created.status_code == 201 and created.json()["value"] == "bob@example.org"
    assert client.post("/suppressions", {"value": "bob@example.org"}).status_code == 200
    assert client.post("/suppressions", {"value": "spam.example"}).json()["scope"] == "domain"
    assert client.post("/suppressions", {"value": "not a thing"}).status_code == 422
    listed = client.get("/suppressions").json()
    assert [s["value"] for s in listed["items"]] == ["bob@example.org", "spam.example"]
    viewer = ApiClient(make_token(organisation, read_only=True))
    assert viewer.get("/suppressions").json()["count"] == 2
    assert viewer.post("/suppressions", {"value": "x@example.org"}).status_code == 403
    assert viewer.delete("/suppressions/bob@example.org").status_code == 403
    other, stranger = sender_setup(stack_node, mail_stack)
    assert stranger.get("/suppressions").json()["count"] == 0
    assert stranger.delete("/suppressions/bob@example.org").status_code == 404
    assert client.delete("/suppressions/bob@example.org").status_code == 204
    assert client.delete("/suppressions/bob@example.org").status_code == 404
    forget_rows(mail_stack, other.name)


def test_it_refuses_a_suppressed_recipient_on_smtp_submission(sender, stack_node, mail_stack,
                                                             internet):
    hosted, client = sender()
    blocked, domain_blocked = internet_address("henry"), internet_address("ivy")
    assert client.post("/suppressions", {"value": blocked}).status_code == 201
    assert client.post("/suppressions",
                       {"value": domain_blocked.partition("@")[2]}).status_code == 201
    reconcile_incremental(stack_node)  # what the reconcile queued on commit does
    login = (hosted.address("news"), PASSWORD)
    for to in (blocked, domain_blocked):
        with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
            smtp_send(mail_stack, "submission", login[0], to,
                      make_message(login[0], to, "x"), login=login)
        code, text = refused.value.recipients[to]
        assert code == 550 and b"5.1.1" in text and b"suppression list" in text
    fine = internet_address("jack")
    smtp_send(mail_stack, "submission", login[0], fine, make_message(login[0], fine, "y"),
              login=login)
    wait_for(lambda: internet.received_by(fine), timeout=30)
    # Another organisation's suppressions do not bind this one.
    other, other_client = sender()
    other_login = (other.address("news"), PASSWORD)
    smtp_send(mail_stack, "submission", other_login[0], blocked,
              make_message(other_login[0], blocked, "z"), login=other_login)
