from mailboxes.models import Alias
from tests.factories import AliasFactory, DomainFactory

BASE = "/mail-admin/acme/aliases/"


def test_it_lists_aliases_in_constant_queries(owner_client, domain, assert_constant_queries):
    AliasFactory(domain=domain)
    assert_constant_queries(
        owner_client, BASE, lambda: [AliasFactory(domain=domain) for _ in range(15)]
    )


def test_it_creates_an_alias_and_a_catch_all(owner_client, domain):
    response = owner_client.post(
        BASE + "new/",
        {"local_part": "info", "domain": "acme.test", "destinations": "a@x.test\nB@Y.test"},
    )
    assert response.status_code == 302
    assert Alias.objects.get(local_part="info").destinations == ["a@x.test", "b@y.test"]
    response = owner_client.post(
        BASE + "new/", {"local_part": "*", "domain": "acme.test", "destinations": "a@x.test"}
    )
    assert response.status_code == 302
    assert Alias.objects.filter(domain=domain, local_part="").exists()
    assert b"Catch-all" in owner_client.get(BASE).content


def test_it_shows_why_an_alias_is_refused(owner_client, mailbox):
    response = owner_client.post(
        BASE + "new/", {"local_part": "anna", "domain": "acme.test", "destinations": "a@x.test"}
    )
    assert response.status_code == 422 and b"is already a mailbox" in response.content
    response = owner_client.post(
        BASE + "new/", {"local_part": "x", "domain": "acme.test", "destinations": "nope"}
    )
    assert response.status_code == 422 and b"not an e-mail address" in response.content


def test_it_edits_and_pauses_an_alias(owner_client, domain):
    alias = AliasFactory(domain=domain, local_part="sales")
    response = owner_client.post(BASE + "sales@acme.test/", {"destinations": "z@z.test"})
    assert response.status_code == 302
    alias.refresh_from_db()
    assert alias.destinations == ["z@z.test"] and alias.active is False


def test_it_confirms_then_deletes_a_catch_all(owner_client, domain):
    AliasFactory(domain=domain, local_part="", destinations=["a@x.test"])
    confirm = owner_client.get(BASE + "@acme.test/delete/")
    assert confirm.status_code == 200 and b"Delete the catch-all" in confirm.content
    assert owner_client.post(BASE + "@acme.test/delete/").status_code == 302
    assert not Alias.objects.filter(domain=domain).exists()


def test_it_forbids_a_viewer_to_change_aliases(viewer_client, domain):
    AliasFactory(domain=domain, local_part="sales")
    assert viewer_client.get(BASE).status_code == 200
    assert b"New alias" not in viewer_client.get(BASE).content
    assert viewer_client.get(BASE + "new/").status_code == 403
    assert (
        viewer_client.post(BASE + "sales@acme.test/", {"destinations": "z@z.test"}).status_code
        == 403
    )
    assert viewer_client.post(BASE + "sales@acme.test/delete/").status_code == 403
    assert Alias.objects.filter(local_part="sales").exists()


def test_it_is_404_for_another_organisations_alias(
    stranger_client, owner_client, domain, other_org
):
    AliasFactory(domain=domain, local_part="sales")
    assert stranger_client.get(BASE + "sales@acme.test/").status_code == 404
    AliasFactory(domain=DomainFactory(organisation=other_org, name="globex.test"), local_part="x")
    assert owner_client.get(BASE + "x@globex.test/").status_code == 404
    response = owner_client.post(
        BASE + "new/", {"local_part": "y", "domain": "globex.test", "destinations": "a@x.test"}
    )
    assert response.status_code == 422  # not one of this organisation's domains to choose
