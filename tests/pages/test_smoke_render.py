"""Every operator page renders for an admin, showing the objects it is about (a fast net for
template errors that also catches a page rendering empty or someone else's data)."""

import pytest

from tests.factories import AliasFactory, AppPasswordFactory, DomainFactory, MailboxFactory
from tests.html_text import visible_text

# Each page and what its reader must see on it: its heading and the acme objects it is about.
PAGES = {
    "/mail-admin/acme/": ["Acme Ltd", "1 domains 1 mailboxes 1 active 0 suspended", "acme.test"],
    "/mail-admin/acme/search/?q=anna": ["Results for “anna”", "anna@acme.test Anna Berg",
                                        "No domain matches", "No alias matches"],
    "/mail-admin/acme/domains/": ["Domains", "acme.test Active"],
    "/mail-admin/acme/domains/add/": ["Add a domain", "Domain name", "Default quota (MB)"],
    "/mail-admin/acme/domains/acme.test/": [
        "acme.test Active Verified", "1 mailboxes 1 aliases",
        "anna@acme.test Anna Berg Active 1024 MB", "info@acme.test someone@acme.test Active",
    ],
    "/mail-admin/acme/domains/acme.test/edit/": ["Settings of acme.test", "Default quota (MB)"],
    "/mail-admin/acme/domains/acme.test/delete/": ["Stop hosting acme.test?"],
    "/mail-admin/acme/mailboxes/": ["Mailboxes", "anna@acme.test Anna Berg Active 1024 MB"],
    "/mail-admin/acme/mailboxes/new/": ["New mailbox", "Domain acme.test"],
    "/mail-admin/acme/mailboxes/import/": ["Import mailboxes from CSV"],
    "/mail-admin/acme/mailboxes/anna@acme.test/": [
        "anna@acme.test Active Anna Berg", "App passwords", "Anna's phone",
    ],
    "/mail-admin/acme/mailboxes/anna@acme.test/password/": ["anna@acme.test Reset the password"],
    "/mail-admin/acme/mailboxes/anna@acme.test/status/?status=suspended": [
        "Suspend anna@acme.test?"
    ],
    "/mail-admin/acme/mailboxes/anna@acme.test/delete/": ["Delete anna@acme.test?"],
    "/mail-admin/acme/aliases/": ["Aliases and forwarders", "info@acme.test someone@acme.test"],
    "/mail-admin/acme/aliases/new/": ["New alias", "Domain acme.test"],
    "/mail-admin/acme/aliases/info@acme.test/": ["info@acme.test Deliver to someone@acme.test"],
    "/mail-admin/acme/aliases/info@acme.test/delete/": ["Delete the alias info@acme.test?"],
    "/mail-admin/acme/members/": ["Members", "{owner} you Owner"],
    "/mail-admin/acme/tokens/": ["API tokens", "No API tokens"],
    "/mail-admin/acme/audit/": ["Audit log"],
}


@pytest.mark.parametrize("path", PAGES)
def test_it_renders_every_operator_page(owner, owner_client, mailbox, other_org, path):
    AliasFactory(domain=mailbox.domain, local_part="info")
    AppPasswordFactory(mailbox=mailbox, name="Anna's phone")
    # Another organisation's objects, named so a leak would show.
    leaked = DomainFactory(organisation=other_org, name="globex.test")
    MailboxFactory(domain=leaked, local_part="anna")
    AliasFactory(domain=leaked, local_part="info")
    response = owner_client.get(path)
    assert response.status_code == 200, response.content[:2000]
    text = visible_text(response.content)
    for expected in PAGES[path]:
        assert expected.format(owner=owner.email) in text, f"{expected!r} not on {path}: {text}"
    assert "globex" not in text
