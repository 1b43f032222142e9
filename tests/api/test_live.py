"""The provisioning promise end to end: create by API, poll until live, log in over IMAP."""

import time

import pytest

from mailboxes import services
from tenants.access import SYSTEM
from tests.api.conftest import ApiClient, make_token
from tests.factories import OrganisationFactory
from tests.stack import imap_login, unique_domain, wait_for

pytestmark = [pytest.mark.stack, pytest.mark.django_db(transaction=True)]


def test_it_creates_a_mailbox_that_goes_live_and_logs_in(reconcile_worker, mail_stack):
    organisation = OrganisationFactory()
    domain = services.domain_create(
        actor=SYSTEM, organisation=organisation, name=unique_domain("api")
    )
    api = ApiClient(make_token(organisation))
    address = f"alice@{domain.name}"

    created = api.post("/mailboxes", {"address": address, "display_name": "Alice"})
    assert created.status_code == 201, created.content
    body = created.json()
    password, revision = body["password"], body["revision"]
    assert revision > 0

    deadline = time.monotonic() + 30
    while not (current := api.get(f"/mailboxes/{address}").json())["live"]:
        assert time.monotonic() < deadline, "the mailbox never went live"
        time.sleep(0.05)
    assert "password" not in current and current["revision"] == revision
    assert wait_for(lambda: imap_login(mail_stack, address, password), timeout=30)

    rotated = api.post(f"/mailboxes/{address}/password")
    assert rotated.status_code == 200, rotated.content
    new_password = rotated.json()["password"]
    wait_for(lambda: imap_login(mail_stack, address, new_password), timeout=30)
    assert not imap_login(mail_stack, address, password)
