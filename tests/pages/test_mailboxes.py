from mailboxes.models import Mailbox
from mailhost.passwords import verify_password
from tests.factories import AppPasswordFactory, DomainFactory, MailboxFactory

BASE = "/mail-admin/acme/mailboxes/"


# --- list ------------------------------------------------------------------------------------


def test_it_lists_and_filters_mailboxes(owner_client, mailbox):
    MailboxFactory(domain=mailbox.domain, local_part="bob", status="suspended")
    body = owner_client.get(BASE).content.decode()
    assert "anna@acme.test" in body and "bob@acme.test" in body
    body = owner_client.get(BASE + "?status=suspended").content.decode()
    assert "anna@acme.test" not in body and "bob@acme.test" in body
    body = owner_client.get(BASE + "?q=ann").content.decode()
    assert "anna@acme.test" in body and "bob@acme.test" not in body


def test_it_lists_mailboxes_in_constant_queries(owner_client, mailbox, assert_constant_queries):
    def grow():
        for _ in range(20):
            MailboxFactory(domain=mailbox.domain)
        MailboxFactory(domain=DomainFactory(organisation=mailbox.domain.organisation))

    assert_constant_queries(owner_client, BASE, grow)


def test_it_shows_a_helpful_empty_state(owner_client, domain):
    body = owner_client.get(BASE).content.decode()
    assert "No mailboxes yet" in body and "import many from a CSV file" in body


def test_it_is_404_to_list_another_organisations_mailboxes(stranger_client, mailbox):
    assert stranger_client.get(BASE).status_code == 404


def test_it_is_404_to_filter_by_another_organisations_domain(owner_client, org, other_org):
    DomainFactory(organisation=other_org, name="globex.test")
    assert owner_client.get(BASE + "?domain=globex.test").status_code == 404


# --- create ----------------------------------------------------------------------------------


def test_it_creates_a_mailbox_and_shows_the_generated_password_once(owner_client, domain):
    response = owner_client.post(
        BASE + "new/", {"local_part": "Carla", "domain": "acme.test", "display_name": "Carla"}
    )
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    password = response.context["password"]
    mailbox = Mailbox.objects.get(local_part="carla")
    assert verify_password(password, mailbox.password_hash)
    assert password.encode() in response.content
    assert password.encode() not in owner_client.get(BASE + "carla@acme.test/").content


def test_it_creates_a_mailbox_with_a_chosen_password(owner_client, domain):
    response = owner_client.post(
        BASE + "new/",
        {"local_part": "dan", "domain": "acme.test", "password": "a-chosen-password"},
    )
    assert response.status_code == 302
    assert verify_password("a-chosen-password", Mailbox.objects.get(local_part="dan").password_hash)


def test_it_shows_why_a_mailbox_is_refused(owner_client, mailbox):
    taken = owner_client.post(BASE + "new/", {"local_part": "anna", "domain": "acme.test"})
    assert taken.status_code == 422 and b"is already a mailbox" in taken.content
    bad = owner_client.post(BASE + "new/", {"local_part": "a b", "domain": "acme.test"})
    assert bad.status_code == 422 and b"may not contain" in bad.content
    weak = owner_client.post(
        BASE + "new/", {"local_part": "eve", "domain": "acme.test", "password": "short"}
    )
    assert weak.status_code == 422 and b"at least 10 characters" in weak.content


def test_it_forbids_a_viewer_to_create(viewer_client, domain):
    assert viewer_client.get(BASE + "new/").status_code == 403
    response = viewer_client.post(BASE + "new/", {"local_part": "x", "domain": "acme.test"})
    assert response.status_code == 403
    assert not Mailbox.objects.filter(local_part="x").exists()


def test_it_is_404_to_create_on_another_organisations_domain(stranger_client, domain):
    response = stranger_client.post(BASE + "new/", {"local_part": "x", "domain": "acme.test"})
    assert response.status_code == 404


# --- detail, edit, password, status, delete, restore ---------------------------------------


def test_it_edits_a_mailbox(owner_client, mailbox):
    response = owner_client.post(
        BASE + "anna@acme.test/", {"display_name": "Anna B.", "quota_mb": "500"}
    )
    assert response.status_code == 302
    mailbox.refresh_from_db()
    assert (mailbox.display_name, mailbox.quota_mb) == ("Anna B.", 500)


def test_it_refuses_a_bad_edit(owner_client, mailbox):
    response = owner_client.post(BASE + "anna@acme.test/", {"display_name": "x", "quota_mb": "-1"})
    assert response.status_code == 422


def test_it_shows_a_viewer_the_mailbox_without_write_controls(viewer_client, mailbox):
    response = viewer_client.get(BASE + "anna@acme.test/")
    assert response.status_code == 200
    body = response.content.decode()
    assert (
        "Reset password" not in body
        and "Delete…" not in body
        and '<form method="post" novalidate>' not in body
    )
    response = viewer_client.post(BASE + "anna@acme.test/", {"display_name": "x", "quota_mb": "5"})
    assert response.status_code == 403


def test_it_is_404_for_another_organisations_mailbox(stranger_client, mailbox):
    for suffix in ("", "password/", "delete/", "status/?status=suspended", "restore/"):
        assert stranger_client.get(BASE + "anna@acme.test/" + suffix).status_code == 404


def test_it_resets_a_password_to_a_generated_one(owner_client, mailbox):
    response = owner_client.post(BASE + "anna@acme.test/password/", {"password": ""})
    assert response.status_code == 200 and "no-store" in response["Cache-Control"]
    mailbox.refresh_from_db()
    assert verify_password(response.context["password"], mailbox.password_hash)


def test_it_forbids_a_viewer_to_reset_a_password(viewer_client, mailbox):
    assert viewer_client.post(BASE + "anna@acme.test/password/", {}).status_code == 403


def test_it_confirms_then_suspends_and_reactivates(owner_client, mailbox):
    confirm = owner_client.get(BASE + "anna@acme.test/status/?status=suspended")
    assert confirm.status_code == 200 and b"Suspend anna@acme.test?" in confirm.content
    mailbox.refresh_from_db()
    assert mailbox.status == "active"  # a GET changes nothing
    owner_client.post(BASE + "anna@acme.test/status/", {"status": "suspended", "confirmed": "1"})
    mailbox.refresh_from_db()
    assert mailbox.status == "suspended"
    owner_client.post(BASE + "anna@acme.test/status/", {"status": "active", "confirmed": "1"})
    mailbox.refresh_from_db()
    assert mailbox.status == "active"


def test_it_refuses_an_unknown_status(owner_client, mailbox):
    response = owner_client.post(
        BASE + "anna@acme.test/status/", {"status": "gone", "confirmed": "1"}
    )
    assert response.status_code == 422


def test_it_confirms_then_deletes_and_restores(owner_client, mailbox):
    assert b"Delete anna@acme.test?" in owner_client.get(BASE + "anna@acme.test/delete/").content
    assert owner_client.post(BASE + "anna@acme.test/delete/").status_code == 302
    mailbox.refresh_from_db()
    assert mailbox.deleted_at is not None
    deleted_page = owner_client.get(BASE + "?status=deleted").content.decode()
    assert "anna@acme.test" in deleted_page
    assert owner_client.post(BASE + "anna@acme.test/restore/").status_code == 302
    mailbox.refresh_from_db()
    assert mailbox.deleted_at is None


def test_it_forbids_a_viewer_to_delete(viewer_client, mailbox):
    assert viewer_client.post(BASE + "anna@acme.test/delete/").status_code == 403
    mailbox.refresh_from_db()
    assert mailbox.deleted_at is None


def test_it_lets_an_operator_revoke_an_app_password(owner_client, viewer_client, mailbox):
    app_password = AppPasswordFactory(mailbox=mailbox, name="lost phone")
    url = f"{BASE}anna@acme.test/app-passwords/{app_password.pk}/revoke/"
    assert viewer_client.post(url).status_code == 403
    assert b"lost phone" in owner_client.get(url).content
    assert owner_client.post(url).status_code == 302
    app_password.refresh_from_db()
    assert app_password.revoked_at is not None


def test_it_is_404_to_revoke_another_mailboxs_app_password(owner_client, mailbox):
    other = AppPasswordFactory(mailbox=MailboxFactory(domain=mailbox.domain))
    url = f"{BASE}anna@acme.test/app-passwords/{other.pk}/revoke/"
    assert owner_client.post(url).status_code == 404


def test_it_names_the_allowed_characters_for_a_local_part_the_stack_cannot_serve(
    owner_client, domain
):
    for local in ("plus+tag", "t~x", "ab'c"):
        response = owner_client.post(BASE + "new/", {"local_part": local, "domain": "acme.test"})
        assert response.status_code == 422
        assert b"a-z, digits 0-9 and the characters . _ -" in response.content
    assert not Mailbox.objects.exists()
