"""Storage use is read from the real Dovecot quota and shown to the mailbox holder."""

import pytest

from mailboxes import services
from mailboxes.tasks import collect_usage
from nodes.models import MailNode
from tenants.access import SYSTEM
from tests.factories import OrganisationFactory
from tests.stack import fetch_inbox, make_message, smtp_send, unique_domain, wait_for

pytestmark = [pytest.mark.stack, pytest.mark.django_db(transaction=True)]


def test_it_records_storage_use_from_dovecot_and_shows_it(reconcile_worker, mail_stack, client):
    domain = services.domain_create(
        actor=SYSTEM, organisation=OrganisationFactory(), name=unique_domain("use")
    )
    mailbox, _ = services.mailbox_create(
        actor=SYSTEM, domain=domain, local_part="fern", password="fern-password-1", quota_mb=1
    )
    empty, _ = services.mailbox_create(
        actor=SYSTEM, domain=domain, local_part="idle", password="idle-password-1"
    )
    node = reconcile_worker
    wait_for(lambda: MailNode.objects.get(pk=node.pk).applied_revision >= empty.revision, 10)
    body = "x" * 300_000
    smtp_send(
        mail_stack,
        "smtp",
        "a@outside.example",
        mailbox.address,
        make_message("a@outside.example", mailbox.address, "big", body),
    )
    wait_for(lambda: fetch_inbox(mail_stack, mailbox.address, "fern-password-1"), timeout=10)

    assert collect_usage(node.pk) >= 1
    mailbox.refresh_from_db()
    assert 300_000 <= mailbox.used_bytes < 400_000
    assert 28 <= mailbox.used_percent <= 39 and mailbox.usage_at is not None

    response = client.post(
        "/mailbox/login/", {"address": mailbox.address, "password": "fern-password-1"}
    )
    assert response.status_code == 302
    page = client.get("/mailbox/").content.decode()
    assert f"{mailbox.used_mb} MB of 1 MB used" in page
