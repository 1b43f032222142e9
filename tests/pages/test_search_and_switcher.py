from tests.factories import AliasFactory, DomainFactory, MailboxFactory, MembershipFactory


def test_it_finds_mailboxes_aliases_and_domains(owner_client, mailbox, other_org):
    AliasFactory(domain=mailbox.domain, local_part="annas-team")
    MailboxFactory(domain=DomainFactory(organisation=other_org), local_part="annabel")
    body = owner_client.get("/mail-admin/acme/search/?q=anna").content.decode()
    assert "anna@acme.test" in body and "annas-team@acme.test" in body
    assert "annabel" not in body  # another organisation's


def test_it_explains_search_when_empty(owner_client, org):
    assert b"Type part of an address" in owner_client.get("/mail-admin/acme/search/").content


def test_it_is_404_to_search_another_organisation(stranger_client, org):
    assert stranger_client.get("/mail-admin/acme/search/?q=a").status_code == 404


def test_it_switches_organisation(owner, owner_client, other_org):
    MembershipFactory(user=owner, organisation=other_org, role="viewer")
    response = owner_client.get("/mail-admin/switch/?org=globex")
    assert response.status_code == 302 and response["Location"] == "/mail-admin/globex/"
    body = owner_client.get("/mail-admin/globex/").content.decode()
    assert '<option value="acme">' in body and 'value="globex" selected' in body


def test_it_is_404_to_switch_to_another_organisation(owner_client, other_org):
    assert owner_client.get("/mail-admin/switch/?org=globex").status_code == 404
    assert owner_client.get("/mail-admin/switch/").status_code == 404
