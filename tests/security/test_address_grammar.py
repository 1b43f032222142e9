"""One grammar for hosted local parts (issue 10, finding 6), end to end.

Local parts the stack could not serve (`plus+tag` was delivered to `plus@`, `t~x` or `ab'c`
could never log in to Dovecot) were accepted and reported live. Now every character class the
portal accepts is created through the API, accepted at RCPT by the real Postfix, delivered over
LMTP and logged in to over IMAP; every other class is a 422 naming the allowed characters,
with nothing written.
"""

import pytest
from django.core.management import CommandError, call_command

from mailboxes.models import Alias, Mailbox
from mailboxes.services import domain_create
from nodes.reconcile import reconcile_incremental
from tenants.access import SYSTEM
from tests.api.conftest import ApiClient, make_token
from tests.factories import MailboxFactory, OrganisationFactory
from tests.security.two_tenants import forget_rows
from tests.stack import fetch_inbox, imap_login, make_message, smtp_send, unique_domain, wait_for

pytestmark = [pytest.mark.stack, pytest.mark.django_db]
PASSWORD = "grammar password 1"

ACCEPTED = {
    "letters": ("alice", "alice"),
    "upper-case (stored lower)": ("MiXed", "mixed"),
    "digits": ("007", "007"),
    "letters-and-digits": ("r2d2", "r2d2"),
    "dot": ("first.last", "first.last"),
    "underscore": ("first_last", "first_last"),
    "hyphen": ("first-last", "first-last"),
    "all-together": ("a.b_c-d9", "a.b_c-d9"),
}
REFUSED = {
    "plus": "plus+tag", "tilde": "t~x", "apostrophe": "ab'c", "backtick": "a`b",
    "caret": "a^b", "percent": "a%b", "exclamation": "a!b", "hash": "a#b", "dollar": "a$b",
    "ampersand": "a&b", "asterisk": "a*b", "equals": "a=b", "question": "a?b",
    "braces": "a{b}", "leading-underscore": "_a", "leading-hyphen": "-a",
}


@pytest.fixture
def hosted(stack_node, mail_stack):
    organisation = OrganisationFactory()
    domain = domain_create(actor=SYSTEM, organisation=organisation, name=unique_domain("gr"))
    yield domain, ApiClient(make_token(organisation))
    forget_rows(mail_stack, domain.name)


@pytest.mark.parametrize(("typed", "stored"), ACCEPTED.values(), ids=ACCEPTED.keys())
def test_it_serves_every_local_part_it_accepts(hosted, stack_node, mail_stack, typed, stored):
    domain, api = hosted
    response = api.post("/mailboxes", {"address": f"{typed}@{domain.name}", "password": PASSWORD})
    assert response.status_code == 201, response.json()
    address = f"{stored}@{domain.name}"
    assert response.json()["address"] == address
    reconcile_incremental(stack_node)

    smtp_send(mail_stack, "smtp", "friend@outside.example", f"{typed}@{domain.name}",
              make_message("friend@outside.example", address, f"hello {typed}"))
    messages = wait_for(lambda: fetch_inbox(mail_stack, address, PASSWORD))
    assert [m["Subject"] for m in messages] == [f"hello {typed}"]
    assert messages[0]["Delivered-To"] == address
    assert imap_login(mail_stack, address, PASSWORD)


@pytest.mark.parametrize("local", REFUSED.values(), ids=REFUSED.keys())
def test_it_refuses_every_other_local_part_with_a_422_naming_the_allowed_characters(
    hosted, local
):
    domain, api = hosted
    for path, body in (
        ("/mailboxes", {"address": f"{local}@{domain.name}", "password": PASSWORD}),
        ("/aliases", {"address": f"{local}@{domain.name}",
                      "destinations": ["someone@outside.example"]}),
    ):
        response = api.post(path, body)
        assert response.status_code == 422, (path, response.json())
        detail = response.json()["detail"]
        assert "a-z" in detail and "0-9" in detail and ". _ -" in detail, detail
    if "+" in local:
        assert "tag" in detail
    assert not Mailbox.objects.filter(domain=domain).exists()
    assert not Alias.objects.filter(domain=domain).exists()


def test_it_still_forwards_to_an_external_address_with_a_broader_local_part(hosted):
    domain, api = hosted
    response = api.post("/aliases", {"address": f"team@{domain.name}",
                                      "destinations": ["first+tag@outside.example",
                                                       "o'brien@outside.example"]})
    assert response.status_code == 201, response.json()


def test_it_lists_existing_addresses_that_no_longer_fit(hosted, capsys):
    domain, _ = hosted
    MailboxFactory(domain=domain, local_part="t~x")  # written before the grammar existed
    MailboxFactory(domain=domain, local_part="fine")
    with pytest.raises(CommandError, match="cannot be served"):
        call_command("checkaddresses")
    out = capsys.readouterr().out
    assert f"t~x@{domain.name}" in out and f"fine@{domain.name}" not in out
