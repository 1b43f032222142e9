"""Sending quotas, enforced by the node on the send API (429 + Retry-After, 422) and on SMTP
submission (451 4.7.1, 550 5.7.1) alike; set by staff; another organisation is not bound."""

import smtplib

import pytest

from nodes.reconcile import reconcile_incremental
from tenants.access import SYSTEM
from tenants.services import staff_token_create
from tests.api.conftest import ApiClient
from tests.delivery.support import internet_address
from tests.inbound.conftest import PASSWORD
from tests.stack import make_message, smtp_send

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
                      "used": {"hourly": 2, "daily": 2, "queued": 2}}]

    other, other_client = sender()  # another organisation is not bound by it
    assert send(other_client, other, internet_address()).status_code == 202

