import pytest

from mailboxes.models import Mailbox
from mailhost.passwords import verify_password
from tenants.models import AuditEvent
from tests.api.conftest import apply_all_nodes, queries_for
from tests.factories import DomainFactory, MailboxFactory

pytestmark = pytest.mark.django_db


def test_it_creates_a_mailbox_and_shows_the_generated_password_once(tenant):
    response = tenant.rw.post("/mailboxes", {"address": "Bob@ACME.test", "display_name": "Bob"})
    assert response.status_code == 201
    body = response.json()
    assert body["address"] == "bob@acme.test"
    assert body["display_name"] == "Bob" and body["quota_mb"] == tenant.domain.default_quota_mb
    password = body["password"]
    mailbox = Mailbox.objects.get(local_part="bob")
    assert verify_password(password, mailbox.password_hash)
    shown_again = tenant.rw.get("/mailboxes/bob@acme.test").json()
    assert "password" not in shown_again and "password_hash" not in shown_again
    assert password not in str(list(AuditEvent.objects.values_list("before", "after")))


def test_it_sets_the_given_password_and_returns_none(tenant):
    response = tenant.rw.post(
        "/mailboxes", {"address": "bob@acme.test", "password": "a long enough secret"}
    )
    assert response.status_code == 201
    assert response.json()["password"] is None
    stored = Mailbox.objects.get(local_part="bob")
    assert verify_password("a long enough secret", stored.password_hash)


def test_it_says_which_revision_is_needed_and_when_it_is_live(tenant):
    created = tenant.rw.post("/mailboxes", {"address": "bob@acme.test"}).json()
    assert created["revision"] > 0 and created["live"] is False
    assert tenant.rw.get("/mailboxes/bob@acme.test").json()["live"] is False
    apply_all_nodes()
    polled = tenant.rw.get("/mailboxes/bob@acme.test").json()
    assert polled["live"] is True and polled["revision"] == created["revision"]


def test_it_answers_409_and_changes_nothing_when_the_mailbox_exists_whatever_is_sent(tenant):
    body = {"address": "bob@acme.test", "password": "a long enough secret", "quota_mb": 100}
    assert tenant.rw.post("/mailboxes", body).status_code == 201
    stored_hash = Mailbox.objects.get(local_part="bob").password_hash
    for again in (body, {"address": "bob@acme.test"}, body | {"quota_mb": 7}):
        response = tenant.rw.post("/mailboxes", again)
        assert response.status_code == 409
        assert response.json()["code"] == "address_taken"
        assert response.json()["field"] == "address"
        assert "Idempotency-Key" in response.json()["detail"]  # how to retry safely
    assert Mailbox.objects.filter(local_part="bob").count() == 1
    assert Mailbox.objects.get(local_part="bob").password_hash == stored_hash


def test_it_answers_409_when_an_alias_holds_the_address(tenant):
    response = tenant.rw.post("/mailboxes", {"address": "info@acme.test"})
    assert response.status_code == 409
    assert response.json()["code"] == "address_taken"
    assert response.json()["field"] == "address"


def test_it_names_the_address_when_the_local_part_or_domain_is_wrong(tenant):
    bad_local = tenant.rw.post("/mailboxes", {"address": "a..b@acme.test"})
    assert bad_local.status_code == 422 and bad_local.json()["field"] == "address"
    no_at = tenant.rw.post("/mailboxes", {"address": "nobody"})
    assert no_at.status_code == 422 and no_at.json()["field"] == "address"
    unknown = tenant.rw.post("/mailboxes", {"address": "bob@unknown.test"})
    assert unknown.status_code == 404 and unknown.json()["field"] == "address"


def test_it_lists_in_a_stable_order_with_a_total_and_the_next_offset(tenant):
    for name in ("carol", "bob", "dave"):
        MailboxFactory(domain=tenant.domain, local_part=name)
    first = tenant.rw.get("/mailboxes", {"limit": 2}).json()
    assert first["count"] == 4 and first["next_offset"] == 2
    assert [m["local_part"] for m in first["items"]] == ["alice", "bob"]
    second = tenant.rw.get("/mailboxes", {"limit": 2, "offset": 2}).json()
    assert [m["local_part"] for m in second["items"]] == ["carol", "dave"]
    assert second["next_offset"] is None


def test_it_filters_by_domain_and_status_and_searches_by_address(tenant):
    other_domain = DomainFactory(organisation=tenant.organisation, name="acme.example")
    MailboxFactory(domain=other_domain, local_part="bob", status="suspended")
    MailboxFactory(domain=tenant.domain, local_part="bobby")

    def addresses(**params):
        return [m["address"] for m in tenant.rw.get("/mailboxes", params).json()["items"]]

    assert addresses(domain="acme.example") == ["bob@acme.example"]
    assert addresses(status="suspended") == ["bob@acme.example"]
    assert addresses(status="deleted") == ["gone@acme.test"]
    assert addresses(search="bob") == ["bob@acme.example", "bobby@acme.test"]
    assert addresses(search="bob@acme.t") == ["bobby@acme.test"]
    assert tenant.rw.get("/mailboxes", {"domain": "nowhere.test"}).status_code == 404


def test_it_lists_only_the_tokens_organisation(tenant, other):
    items = other.rw.get("/mailboxes").json()["items"]
    assert [m["address"] for m in items] == ["alice@globex.test"]


def test_it_lists_with_the_same_number_of_queries_at_any_page_size(tenant):
    second = DomainFactory(organisation=tenant.organisation, name="second.test")
    few = queries_for(tenant.rw, "/mailboxes")
    for n in range(12):
        MailboxFactory(domain=second if n % 2 else tenant.domain)
    assert queries_for(tenant.rw, "/mailboxes") == few
    assert queries_for(tenant.rw, "/mailboxes", {"domain": "second.test", "search": "u"}) == few + 1


def test_it_renames_within_the_domain_and_changes_attributes_together(tenant):
    response = tenant.rw.patch(
        "/mailboxes/alice@acme.test",
        {"address": "alice.b@acme.test", "display_name": "Alice B", "quota_mb": 50,
         "status": "suspended"},
    )
    assert response.status_code == 200
    body = response.json()
    assert (body["address"], body["display_name"], body["quota_mb"], body["status"]) == (
        "alice.b@acme.test", "Alice B", 50, "suspended"
    )
    assert tenant.rw.get("/mailboxes/alice@acme.test").status_code == 404


def test_it_changes_nothing_when_part_of_a_patch_fails(tenant):
    MailboxFactory(domain=tenant.domain, local_part="taken")
    response = tenant.rw.patch(
        "/mailboxes/alice@acme.test", {"display_name": "Changed", "address": "taken@acme.test"}
    )
    assert response.status_code == 409
    tenant.mailbox.refresh_from_db()
    assert tenant.mailbox.display_name == "Alice"


def test_it_soft_deletes_and_restores(tenant):
    deleted = tenant.rw.delete("/mailboxes/alice@acme.test")
    assert deleted.status_code == 200 and deleted.json()["deleted"] is True
    assert tenant.rw.get("/mailboxes/alice@acme.test").status_code == 404
    found = tenant.rw.get("/mailboxes/alice@acme.test", {"include_deleted": "true"})
    assert found.status_code == 200 and found.json()["deleted_at"]
    restored = tenant.rw.post("/mailboxes/alice@acme.test/restore")
    assert restored.status_code == 200 and restored.json()["deleted"] is False
    assert tenant.rw.get("/mailboxes/alice@acme.test").status_code == 200


def test_it_rotates_a_password_by_generating_or_setting_one(tenant):
    old_hash = tenant.mailbox.password_hash
    generated = tenant.rw.post("/mailboxes/alice@acme.test/password")
    assert generated.status_code == 200
    new_password = generated.json()["password"]
    tenant.mailbox.refresh_from_db()
    assert tenant.mailbox.password_hash != old_hash
    assert verify_password(new_password, tenant.mailbox.password_hash)
    assert generated.json()["revision"] == tenant.mailbox.revision

    chosen = tenant.rw.post("/mailboxes/alice@acme.test/password", {"password": "my own choice!"})
    assert chosen.status_code == 200 and chosen.json()["password"] is None
    tenant.mailbox.refresh_from_db()
    assert verify_password("my own choice!", tenant.mailbox.password_hash)


def test_it_suspends_and_resumes(tenant):
    assert tenant.rw.post("/mailboxes/alice@acme.test/suspend").json()["status"] == "suspended"
    assert tenant.rw.post("/mailboxes/alice@acme.test/resume").json()["status"] == "active"
    events = AuditEvent.objects.filter(action="mailbox.status").order_by("id")
    assert [after["status"] for after in events.values_list("after", flat=True)] == [
        "suspended", "active"
    ]


def test_it_refuses_a_rename_into_another_domain(tenant):
    response = tenant.rw.patch("/mailboxes/alice@acme.test", {"address": "alice@acme.example"})
    assert response.status_code == 422 and response.json()["field"] == "address"


def test_it_answers_409_restoring_an_address_taken_since(tenant):
    MailboxFactory(domain=tenant.domain, local_part="gone")
    response = tenant.rw.post("/mailboxes/gone@acme.test/restore")
    assert response.status_code == 409 and response.json()["code"] == "address_taken"
    assert Mailbox.objects.filter(local_part="gone", deleted_at=None).count() == 1
    # Reading it shows the live mailbox, not the deleted one.
    shown = tenant.rw.get("/mailboxes/gone@acme.test", {"include_deleted": "true"}).json()
    assert shown["deleted"] is False


def test_it_changes_nothing_restoring_a_mailbox_that_is_not_deleted(tenant):
    response = tenant.rw.post("/mailboxes/alice@acme.test/restore")
    assert response.status_code == 200 and response.json()["deleted"] is False
    assert not AuditEvent.objects.filter(action="mailbox.restore").exists()
