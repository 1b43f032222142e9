"""Suspending an organisation, seen from outside on the real Postfix and Dovecot: its mailboxes
cannot log in and its domains refuse mail, then both work again once the suspension is lifted.
Another organisation on the same node is untouched throughout."""

import smtplib

import pytest
from django.test import Client

from mailboxes import services
from mailboxes.models import Domain
from mailhost.passwords import generate_password
from nodes.models import MailNode
from tenants.access import SYSTEM
from tenants.services import staff_token_create
from tests.api.conftest import ApiClient
from tests.factories import OrganisationFactory
from tests.stack import fetch_inbox, imap_login, make_message, smtp_send, unique_domain, wait_for

pytestmark = [pytest.mark.stack, pytest.mark.embedded, pytest.mark.django_db(transaction=True)]


def rcpt_code(stack, address: str) -> int:
    with smtplib.SMTP(*stack.address("smtp"), timeout=5) as client:
        client.ehlo("sender.example")
        client.mail("someone@sender.example")
        code, _ = client.rcpt(address)
        return code


def applied(domain: Domain) -> bool:
    """Everything committed so far is live on the node."""
    node = MailNode.objects.get(pk=domain.node_id)
    return node.applied_revision >= node.desired_revision


def portal_login(address: str, password: str) -> int:
    return Client().post("/mailbox/login/", {"address": address, "password": password}).status_code


def client_with_mailbox(name: str):
    organisation = OrganisationFactory(slug=name, name=name.title())
    domain = services.domain_create(actor=SYSTEM, organisation=organisation,
                                    name=unique_domain(name))
    password = generate_password()
    mailbox, _ = services.mailbox_create(actor=SYSTEM, domain=domain, local_part="anna",
                                         password=password)
    return organisation, domain, mailbox.address, password


def test_it_stops_and_restarts_an_organisations_mail_on_the_node(reconcile_worker, mail_stack):
    _, domain, address, password = client_with_mailbox("suspendme")
    _, _, bystander, bystander_password = client_with_mailbox("bystander")
    wait_for(lambda: applied(domain) and imap_login(mail_stack, address, password))
    assert rcpt_code(mail_stack, address) == 250
    _, staff_raw = staff_token_create(actor=SYSTEM, name="robot")
    staff = ApiClient(staff_raw)

    assert staff.post("/staff/organisations/suspendme/suspend").status_code == 200
    wait_for(lambda: applied(domain))

    assert not imap_login(mail_stack, address, password)
    assert rcpt_code(mail_stack, address) >= 500
    with pytest.raises(smtplib.SMTPRecipientsRefused):
        smtp_send(mail_stack, "smtp", "someone@sender.example", address,
                  make_message("someone@sender.example", address, "while suspended"))
    assert portal_login(address, password) == 401
    # The other organisation on the same node keeps its mail.
    assert imap_login(mail_stack, bystander, bystander_password)
    assert rcpt_code(mail_stack, bystander) == 250

    assert staff.post("/staff/organisations/suspendme/unsuspend").status_code == 200
    wait_for(lambda: applied(domain))

    assert imap_login(mail_stack, address, password)
    smtp_send(mail_stack, "smtp", "someone@sender.example", address,
              make_message("someone@sender.example", address, "after the suspension"))
    messages = wait_for(lambda: fetch_inbox(mail_stack, address, password))
    assert [m["Subject"] for m in messages] == ["after the suspension"]
    assert portal_login(address, password) == 302
