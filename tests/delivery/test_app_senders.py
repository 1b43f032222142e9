"""Application senders: SMTP submission works (DKIM-signed, delivered) as their scoped From
addresses only; IMAP refuses them; a revoked one cannot log in."""

import smtplib

import dkim
import pytest

from nodes.reconcile import reconcile_incremental
from tests.delivery.support import internet_address, published_txt
from tests.stack import imap_login, make_message, smtp_send, wait_for

pytestmark = pytest.mark.stack


def test_it_sends_as_its_addresses_only_and_never_reads_mail(sender, stack_node, mail_stack,
                                                             internet):
    hosted, client = sender()
    alerts = hosted.address("alerts")
    created = client.post("/app-senders", {"name": "monitoring", "addresses": [alerts]})
    assert created.status_code == 201, created.content
    login, password = created.json()["login"], created.json()["password"]
    assert client.post("/app-senders", {"name": "x", "addresses": [hosted.address("news")]}) \
        .json()["code"] == "invalid"  # a mailbox's address stays the mailbox's
    assert client.get("/app-senders").json()[0]["login"] == login
    assert "password" not in client.get("/app-senders").json()[0]
    reconcile_incremental(stack_node)  # what the reconcile queued on commit does

    to = internet_address("ops")
    smtp_send(mail_stack, "submission", alerts, to, make_message(alerts, to, "disk full"),
              login=(login, password))
    (received,) = wait_for(lambda: internet.received_by(to), timeout=30)
    assert dkim.verify(received.data, dnsfunc=published_txt(mail_stack))

    news = hosted.address("news")
    with pytest.raises(smtplib.SMTPRecipientsRefused) as mismatch:  # envelope outside scope
        smtp_send(mail_stack, "submission", news, to, make_message(news, to, "x"),
                  login=(login, password))
    assert mismatch.value.recipients[to][0] == 553  # Postfix: not owned by user
    with pytest.raises(smtplib.SMTPDataError) as refused:  # header From outside its scope
        smtp_send(mail_stack, "submission", alerts, to, make_message(news, to, "y"),
                  login=(login, password))
    assert refused.value.smtp_code == 550
    assert not imap_login(mail_stack, login, password)

    assert client.delete(f"/app-senders/{login}").status_code == 204
    reconcile_incremental(stack_node)
    with pytest.raises(smtplib.SMTPAuthenticationError):
        smtp_send(mail_stack, "submission", alerts, to, make_message(alerts, to, "z"),
                  login=(login, password))
