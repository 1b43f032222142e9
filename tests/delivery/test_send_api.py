"""POST /api/v1/messages against the real stack: the message reaches the (fake) internet MX
DKIM-signed for the sending domain, with the VERP return path; idempotent; bounded."""

import base64
import email
import email.policy
import threading

import dkim
import pytest
from django.db import connection

from delivery.models import Message
from tests.api.conftest import ApiClient, make_token
from tests.delivery.support import internet_address, published_txt, sender_setup
from tests.security.two_tenants import forget_rows
from tests.stack import wait_for

pytestmark = pytest.mark.stack


def body(hosted, **extra) -> dict:
    return {"from": hosted.address("news"), "subject": "Your invoice", "text": "Hello.\n",
            **extra}


def test_it_delivers_a_dkim_signed_message_with_a_verp_return_path(sender, internet, mail_stack):
    hosted, client = sender()
    to, bcc = internet_address("alice"), internet_address("hidden")
    response = client.post("/messages", body(
        hosted, to=[to], bcc=[bcc], reply_to=[hosted.address("news")],
        html="<p>Hello.</p>",
        headers={"X-Campaign": "march", "List-Unsubscribe": "<mailto:u@x.example>"},
        attachments=[{"filename": "a.txt", "content_type": "text/plain",
                      "content": base64.b64encode(b"attached").decode()}],
        tags=["invoice"], metadata={"customer": "42"},
    ))
    assert response.status_code == 202, response.content
    sent = response.json()
    assert sent["status"] == "queued" and sent["from"] == hosted.address("news")
    assert {(r["address"], r["kind"]) for r in sent["recipients"]} == {(to, "to"), (bcc, "bcc")}

    (received,) = wait_for(lambda: internet.received_by(to), timeout=30)
    assert received.mail_from == f"bounces+{sent['id']}@{hosted.name}"
    assert sorted(received.rcpt_tos) == sorted([to, bcc])
    raw = received.data
    assert dkim.verify(raw, dnsfunc=published_txt(mail_stack))
    assert f"d={hosted.name}".encode() in raw
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert msg["Bcc"] is None and bcc.encode() not in raw.split(b"\r\n\r\n")[0]
    assert msg["X-Campaign"] == "march" and msg["Message-ID"] == sent["message_id"]
    assert [p.get_filename() for p in msg.iter_attachments()] == ["a.txt"]
    assert msg.get_body(("html",)).get_content().strip() == "<p>Hello.</p>"


def test_it_sends_once_for_a_replayed_idempotency_key(sender, internet):
    hosted, client = sender()
    to = internet_address()
    key = {"Idempotency-Key": "invoice-2026-0001"}
    first = client.post("/messages", body(hosted, to=[to]), headers=key)
    again = client.post("/messages", body(hosted, to=[to]), headers=key)
    assert first.status_code == again.status_code == 202
    assert again.json()["id"] == first.json()["id"]
    assert again["Idempotent-Replayed"] == "true"
    other = client.post("/messages", body(hosted, to=[to], subject="Other"), headers=key)
    assert other.status_code == 422 and other.json()["code"] == "idempotency_key_reused"

    wait_for(lambda: internet.received_by(to), timeout=30)
    marker = first.json()["message_id"].encode()
    assert sum(marker in m.data for m in internet.messages) == 1
    assert Message.objects.filter(idempotency_key="invoice-2026-0001").count() == 1


@pytest.mark.django_db(transaction=True)
@pytest.mark.embedded
def test_it_makes_one_message_of_20_concurrent_identical_requests(sender, internet):
    hosted, client = sender()
    to = internet_address()
    start, responses = threading.Barrier(20), []

    def send():
        try:
            start.wait(timeout=30)
            responses.append(ApiClient(client.token).post(
                "/messages", body(hosted, to=[to]), headers={"Idempotency-Key": "burst-1"}))
        finally:
            connection.close()

    threads = [threading.Thread(target=send) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert [r.status_code for r in responses] == [202] * 20, [r.content for r in responses]
    assert len({r.json()["id"] for r in responses}) == 1
    assert Message.objects.filter(organisation=hosted.domain.organisation).count() == 1
    wait_for(lambda: internet.received_by(to), timeout=30)
    assert len(internet.received_by(to)) == 1


def test_it_refuses_what_may_not_be_sent(sender, stack_node, mail_stack):
    hosted, client = sender()
    other, _ = sender_setup(stack_node, mail_stack)
    to = [internet_address()]
    cases = [
        (body(other, to=to), 422, "sender_not_allowed"),  # another tenant's domain
        ({**body(hosted, to=to), "from": hosted.address("nobody")}, 422, "sender_not_allowed"),
        (body(hosted, to=to, headers={"Sender": "x@y.example"}), 422, "header_not_allowed"),
        (body(hosted, to=to, headers={"X-Mailhost-Sender": "x"}), 422, "header_not_allowed"),
        (body(hosted, to=to, subject="two\r\nBcc: x@y.example"), 422, "invalid"),
        (body(hosted, to=["not an address"]), 422, "invalid"),
        (body(hosted), 422, "invalid"),  # no recipient
        (body(hosted, to=to, attachments=[{"filename": "a", "content": "%%%"}]), 422, "invalid"),
    ]
    for payload, status, code in cases:
        response = client.post("/messages", payload)
        assert (response.status_code, response.json()["code"]) == (status, code), payload
    forget_rows(mail_stack, other.name)
    viewer = ApiClient(make_token(hosted.domain.organisation, read_only=True))
    assert viewer.post("/messages", body(hosted, to=to)).status_code == 403
    assert Message.objects.filter(domain=hosted.domain).count() == 0


def test_it_answers_413_beyond_the_size_limits(sender):
    hosted, client = sender()
    to = [internet_address()]
    part = base64.b64encode(b"x" * (18 * 1024 * 1024 + 1)).decode()
    one = client.post("/messages", body(hosted, to=to, attachments=[
        {"filename": "big.bin", "content": part}]))
    assert one.status_code == 413 and "part may be at most" in one.json()["detail"]
    half = base64.b64encode(b"x" * (13 * 1024 * 1024)).decode()
    two = client.post("/messages", body(hosted, to=to, attachments=[
        {"filename": "a.bin", "content": half}, {"filename": "b.bin", "content": half}]))
    assert two.status_code == 413 and "at most" in two.json()["detail"]
    assert Message.objects.filter(domain=hosted.domain).count() == 0


def test_it_shows_a_message_to_its_organisation_only(sender, internet, stack_node, mail_stack):
    hosted, client = sender()
    sent = client.post("/messages", body(hosted, to=[internet_address()], tags=["t1"])).json()
    assert client.get(f"/messages/{sent['id']}").json()["tags"] == ["t1"]
    other, stranger = sender_setup(stack_node, mail_stack)
    assert stranger.get(f"/messages/{sent['id']}").status_code == 404
    assert stranger.get("/messages").json()["count"] == 0
    assert client.get("/messages", {"tag": "t1"}).json()["count"] == 1
    assert client.get("/messages", {"tag": "t2"}).json()["count"] == 0
    forget_rows(mail_stack, other.name)
