from tenants.access import SYSTEM
from tenants.audit import audit_record
from tests.factories import OrganisationFactory

BASE = "/mail-admin/acme/audit/"


def event(org, action="mailbox.create", target="anna@acme.test"):
    return audit_record(
        actor=SYSTEM,
        organisation_id=org.pk,
        action=action,
        target_type="x",
        target=target,
        before={"a": 1},
        after={"a": 2},
    )


def test_it_lists_and_filters_events(viewer_client, org):
    event(org, "mailbox.create", "anna@acme.test")
    event(org, "alias.delete", "info@acme.test")
    event(OrganisationFactory(), "mailbox.create", "secret@other.test")
    body = viewer_client.get(BASE).content.decode()
    assert "anna@acme.test" in body and "info@acme.test" in body
    assert "secret@other.test" not in body
    body = viewer_client.get(BASE + "?action=alias").content.decode()
    assert "info@acme.test" in body and "anna@acme.test" not in body
    body = viewer_client.get(BASE + "?target=zzz").content.decode()
    assert "No event matches" in body


def test_it_lists_events_in_constant_queries(owner_client, org, assert_constant_queries):
    event(org)
    assert_constant_queries(owner_client, BASE, lambda: [event(org) for _ in range(20)])


def test_it_paginates(owner_client, org, settings):
    settings.MAILHOST_PAGE_SIZE = 3
    for n in range(5):
        event(org, target=f"t{n}@acme.test")
    body = owner_client.get(BASE + "?action=mailbox&page=2").content.decode()
    assert "Page 2 of 2" in body and "action=mailbox&amp;page=1" in body


def test_it_is_404_for_another_organisation(stranger_client, org):
    assert stranger_client.get(BASE).status_code == 404
