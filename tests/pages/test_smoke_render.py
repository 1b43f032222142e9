"""Every operator page renders for an admin (a fast net for template errors)."""

import pytest

from tests.factories import AliasFactory, AppPasswordFactory


@pytest.mark.parametrize(
    "path",
    [
        "/mail-admin/acme/",
        "/mail-admin/acme/search/?q=anna",
        "/mail-admin/acme/domains/",
        "/mail-admin/acme/domains/add/",
        "/mail-admin/acme/domains/acme.test/",
        "/mail-admin/acme/domains/acme.test/edit/",
        "/mail-admin/acme/domains/acme.test/delete/",
        "/mail-admin/acme/mailboxes/",
        "/mail-admin/acme/mailboxes/new/",
        "/mail-admin/acme/mailboxes/import/",
        "/mail-admin/acme/mailboxes/anna@acme.test/",
        "/mail-admin/acme/mailboxes/anna@acme.test/password/",
        "/mail-admin/acme/mailboxes/anna@acme.test/status/?status=suspended",
        "/mail-admin/acme/mailboxes/anna@acme.test/delete/",
        "/mail-admin/acme/aliases/",
        "/mail-admin/acme/aliases/new/",
        "/mail-admin/acme/aliases/info@acme.test/",
        "/mail-admin/acme/aliases/info@acme.test/delete/",
        "/mail-admin/acme/members/",
        "/mail-admin/acme/tokens/",
        "/mail-admin/acme/audit/",
    ],
)
def test_it_renders_every_operator_page(owner_client, mailbox, path):
    AliasFactory(domain=mailbox.domain, local_part="info")
    AppPasswordFactory(mailbox=mailbox)
    response = owner_client.get(path)
    assert response.status_code == 200, response.content[:2000]
    assert b"<h1>" in response.content
