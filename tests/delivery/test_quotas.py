"""Sending quotas, enforced by the node on the send API (429 + Retry-After, 422) and on SMTP
submission (451 4.7.1, 550 5.7.1) alike; set by staff; another organisation is not bound."""

import smtplib

import pytest
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from nodes.reconcile import reconcile_incremental
from tenants.access import SYSTEM
from tenants.services import staff_token_create
from tests.api.conftest import ApiClient
from tests.delivery.support import internet_address
from tests.factories import MembershipFactory
from tests.inbound.conftest import PASSWORD
from tests.stack import make_message, smtp_send, wait_for

pytestmark = pytest.mark.stack


def send(client, hosted, *to):
    return client.post("/messages", {"from": hosted.address("news"), "to": list(to),
                                     "subject": "Hello", "text": "Hi.\n"})


def staff() -> ApiClient:
    return ApiClient(staff_token_create(actor=SYSTEM, name="quota robot")[1])


def test_it_holds_the_api_and_smtp_submission_to_the_hourly_limit(sender, stack_node,
                                                                   mail_stack):
    hosted, client = sender()
    organisation = hosted.domain.organisation
    put = staff().send("PUT", f"/staff/organisations/{organisation.slug}/sending-quota",
                       {"hourly": 2, "max_recipients": 3})
    assert put.status_code == 200 and put.json()["scope"] == f"org:{organisation.id}"
    assert client.send("PUT", f"/staff/organisations/{organisation.slug}/sending-quota",
                       {"hourly": 100}).status_code == 403  # an organisation's own token
    reconcile_incremental(stack_node)  # what the reconcile queued on commit does

    too_many = send(client, hosted, *(internet_address(f"m{i}") for i in range(4)))
    assert too_many.status_code == 422 and too_many.json()["code"] == "quota_exceeded"
    assert send(client, hosted, internet_address()).status_code == 202
    assert send(client, hosted, internet_address()).status_code == 202
    over = send(client, hosted, internet_address())
    assert over.status_code == 429 and over.json()["code"] == "quota_exceeded"
    assert 0 < int(over["Retry-After"]) <= 3600 and "4.7.1" in over.json()["detail"]

    login = (hosted.address("news"), PASSWORD)
    to = internet_address()
    with pytest.raises(smtplib.SMTPDataError) as refused:
        smtp_send(mail_stack, "submission", login[0], to,
                  make_message(login[0], to, "over"), login=login)
    assert refused.value.smtp_code == 451 and b"hourly sending limit" in refused.value.smtp_error
    usage = client.get(f"/domains/{hosted.name}/sending-quota").json()
    assert usage == [{"scope": f"org:{organisation.id}",
                      "limits": {"hourly": 2, "daily": None, "max_recipients": 3,
                                 "max_queued": None, "login_hourly": None, "login_daily": None},
                      "used": {"hourly": 2, "daily": 2, "queued": 2,
                               "refused": 3}}]  # too many recipients, API and SMTP over

    other, other_client = sender()  # another organisation is not bound by it
    assert send(other_client, other, internet_address()).status_code == 202



def test_it_refuses_new_mail_while_the_queue_holds_the_limit(sender, stack_node, mail_stack,
                                                             internet):
    hosted, client = sender()
    organisation = hosted.domain.organisation
    assert staff().send("PUT", f"/staff/organisations/{organisation.slug}/sending-quota",
                        {"domain": hosted.name, "max_queued": 2}).status_code == 200
    reconcile_incremental(stack_node)
    # The remote defers these a few times: they wait in the node's queue meanwhile.
    slow = [internet_address(f"defer-8-q{i}") for i in range(2)]
    for to in slow:
        assert send(client, hosted, to).status_code == 202
    full = send(client, hosted, internet_address())
    assert full.status_code == 429 and full.json()["code"] == "quota_exceeded"
    assert "4.7.1" in full.json()["detail"] and "queued messages limit of 2" in \
        full.json()["detail"]
    assert int(full["Retry-After"]) == 60
    login = (hosted.address("news"), PASSWORD)
    to = internet_address()
    with pytest.raises(smtplib.SMTPDataError) as refused:
        smtp_send(mail_stack, "submission", login[0], to,
                  make_message(login[0], to, "queue full"), login=login)
    assert refused.value.smtp_code == 451 and b"queued messages limit" in refused.value.smtp_error
    used = client.get(f"/domains/{hosted.name}/sending-quota").json()[0]["used"]
    assert used["queued"] == 2

    # Delivered at last: they leave the queue, and the domain may send again.
    wait_for(lambda: all(internet.received_by(to) for to in slow), timeout=60)
    accepted = wait_for(lambda: send(client, hosted, internet_address()).status_code == 202,
                        timeout=30, interval=0.5)
    assert accepted


def test_it_holds_each_smtp_login_to_its_own_hourly_rate(sender, stack_node, mail_stack,
                                                         internet):
    hosted, client = sender(mailboxes=("news", "ceo"))
    organisation = hosted.domain.organisation
    assert staff().send("PUT", f"/staff/organisations/{organisation.slug}/sending-quota",
                        {"login_hourly": 1}).status_code == 200
    reconcile_incremental(stack_node)
    news, ceo = hosted.address("news"), hosted.address("ceo")
    to = internet_address()
    smtp_send(mail_stack, "submission", news, to, make_message(news, to, "first"),
              login=(news, PASSWORD))
    with pytest.raises(smtplib.SMTPDataError) as refused:
        smtp_send(mail_stack, "submission", news, to, make_message(news, to, "second"),
                  login=(news, PASSWORD))
    assert refused.value.smtp_code == 451
    assert refused.value.smtp_error.startswith(b"4.7.1")
    assert f"per login reached for {news}".encode() in refused.value.smtp_error
    # Another mailbox of the domain has its own allowance; the send API has no login.
    smtp_send(mail_stack, "submission", ceo, to, make_message(ceo, to, "ceo's"),
              login=(ceo, PASSWORD))
    assert send(client, hosted, to).status_code == 202
    wait_for(lambda: len(internet.received_by(to)) == 3, timeout=40)


def _refusals_scraped(token: str) -> dict:
    text = Client().get("/metrics", headers={"Authorization": f"Bearer {token}"})
    return {tuple(sorted(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text.content.decode())
            for sample in family.samples if sample.name == "mailhost_sending_refusals_total"}


def test_it_counts_refusals_per_organisation_in_metrics_and_on_the_domain_page(
    sender, stack_node, mail_stack, settings
):
    settings.MAILHOST_METRICS_TOKEN = "scrape-token-refusals"
    hosted, _client = sender()
    organisation = hosted.domain.organisation
    assert staff().send("PUT", f"/staff/organisations/{organisation.slug}/sending-quota",
                        {"domain": hosted.name, "hourly": 1}).status_code == 200
    reconcile_incremental(stack_node)
    news = hosted.address("news")
    to = internet_address()
    smtp_send(mail_stack, "submission", news, to, make_message(news, to, "first"),
              login=(news, PASSWORD))
    for attempt in range(2):  # the sender tries twice more; both are turned away
        with pytest.raises(smtplib.SMTPDataError) as refused:
            smtp_send(mail_stack, "submission", news, to,
                      make_message(news, to, f"again {attempt}"), login=(news, PASSWORD))
        assert refused.value.smtp_code == 451

    labels = (("node", stack_node.name), ("organisation", organisation.slug),
              ("reason", "hourly"))
    assert _refusals_scraped(settings.MAILHOST_METRICS_TOKEN)[labels] == 2

    viewer = Client()
    viewer.force_login(MembershipFactory(organisation=organisation, role="viewer").user)
    page = viewer.get(f"/mail-admin/{organisation.slug}/domains/{hosted.name}/")
    text = page.content.decode()
    assert page.status_code == 200 and "Refused today" in text
    assert '<td data-label="Refused today" class="num">2</td>' in text
