"""Staff onboard a client in /mail-admin/: create the organisation, invite its first admin, land
on its dashboard; and suspend or lift a suspension. Nobody else can."""

import re

import pytest
from allauth.account.models import EmailAddress
from django.core import mail

from tenants.models import AuditEvent, Invitation, Membership, Organisation
from tests.factories import DomainFactory, MembershipFactory, UserFactory
from tests.pages.conftest import client_for

NEW = "/mail-admin/organisations/new/"
FORM = {"name": "Initech Ltd", "slug": "initech", "admin_email": "Peter@Initech.test",
        "admin_role": "owner"}


@pytest.fixture
def staff(db):
    return UserFactory(is_staff=True, is_superuser=True)


@pytest.fixture
def staff_client(staff):
    return client_for(staff)


def test_it_lets_staff_create_an_organisation_invite_its_admin_and_land_on_its_dashboard(
    staff_client, staff, django_capture_on_commit_callbacks
):
    assert staff_client.get("/mail-admin/").status_code in (200, 302)
    form = staff_client.get(NEW)
    assert form.status_code == 200 and b"First admin" in form.content

    with django_capture_on_commit_callbacks(execute=True):
        response = staff_client.post(NEW, FORM, follow=True)

    assert response.redirect_chain == [("/mail-admin/initech/", 302)]
    assert response.status_code == 200
    page = response.content.decode()
    assert "<h1>Initech Ltd</h1>" in page and "peter@initech.test" in page
    organisation = Organisation.objects.get(slug="initech")
    invitation = Invitation.objects.get(organisation=organisation)
    assert (invitation.email, invitation.role, invitation.accepted_at) == (
        "peter@initech.test", "owner", None
    )
    assert [m.to for m in mail.outbox] == [["peter@initech.test"]]
    link = re.search(r"https?://\S+/mail-admin/invitations/\S+/", mail.outbox[0].body)[0]
    actions = AuditEvent.objects.filter(organisation=organisation).values_list(
        "action", "actor_user"
    )
    assert set(actions) == {("organisation.create", staff.pk), ("invitation.create", staff.pk)}

    # The invited admin signs up with that (verified) address, follows the link, and owns it.
    peter = UserFactory(username="peter@initech.test", email="peter@initech.test")
    EmailAddress.objects.create(user=peter, email=peter.email, verified=True, primary=True)
    peter_client = client_for(peter)
    path = link.split("testserver", 1)[1]
    assert peter_client.post(path).status_code == 302
    assert Membership.objects.get(user=peter, organisation=organisation).role == "owner"
    assert peter_client.get("/mail-admin/initech/").status_code == 200


def test_it_creates_an_organisation_without_inviting_anyone(staff_client):
    response = staff_client.post(NEW, FORM | {"admin_email": ""})
    assert response.status_code == 302 and response["Location"] == "/mail-admin/initech/"
    assert not Invitation.objects.exists() and not mail.outbox


@pytest.mark.parametrize(
    "changes, field_message",
    [
        ({"slug": "Not A Slug"}, "slug"),
        ({"slug": "switch"}, "reserved"),
        ({"admin_email": "not-an-address"}, "valid email"),
        ({"name": ""}, "required"),
        ({"admin_role": "viewer"}, "valid choice"),
    ],
)
def test_it_shows_bad_input_on_the_form_and_creates_nothing(
    staff_client, changes, field_message
):
    response = staff_client.post(NEW, FORM | changes)
    assert response.status_code == 422
    assert field_message in response.content.decode().lower()
    assert not Organisation.objects.exists() and not Invitation.objects.exists()


def test_it_refuses_a_slug_that_is_taken(staff_client, org):
    response = staff_client.post(NEW, FORM | {"slug": "acme"})
    assert response.status_code == 422 and b"exists" in response.content
    assert Organisation.objects.count() == 1 and not Invitation.objects.exists()


def test_it_refuses_onboarding_to_an_operator_who_is_not_staff(owner_client, org):
    assert owner_client.get(NEW).status_code == 403
    assert owner_client.post(NEW, FORM).status_code == 403
    assert b"New organisation" not in owner_client.get("/mail-admin/acme/").content
    assert list(Organisation.objects.values_list("slug", flat=True)) == ["acme"]
    assert not Invitation.objects.exists()


def test_it_lets_staff_suspend_an_organisation_and_its_pages_say_so(staff_client, owner_client,
                                                                   org, other_org):
    DomainFactory(organisation=org, name="acme.test")
    confirm = staff_client.get("/mail-admin/acme/suspend/")
    assert confirm.status_code == 200 and b"Suspend Acme Ltd?" in confirm.content

    assert staff_client.post("/mail-admin/acme/suspend/").status_code == 302

    org.refresh_from_db()
    assert org.suspended
    for client in (staff_client, owner_client):
        assert b"Acme Ltd is suspended" in client.get("/mail-admin/acme/").content
    # Its members can look but not change anything, in every form.
    assert b"Add domain" not in owner_client.get("/mail-admin/acme/").content
    refused = owner_client.post("/mail-admin/acme/domains/add/", {"name": "new.test"})
    assert refused.status_code == 403
    refused = owner_client.post("/mail-admin/acme/members/", {"email": "a@b.test", "role": "admin"})
    assert refused.status_code == 403 and b"suspended" in refused.content
    assert owner_client.get("/mail-admin/acme/domains/").status_code == 200
    suspended_list = staff_client.get("/mail-admin/").content.decode()
    assert "Suspended" in suspended_list

    assert staff_client.post("/mail-admin/acme/unsuspend/").status_code == 302
    org.refresh_from_db()
    assert not org.suspended
    assert b"is suspended" not in owner_client.get("/mail-admin/acme/").content
    assert set(AuditEvent.objects.filter(organisation=org).values_list("action", flat=True)) >= {
        "organisation.suspend", "organisation.unsuspend"
    }


def test_it_lets_no_member_suspend_their_own_or_another_organisation(owner_client, org,
                                                                   other_org):
    MembershipFactory(organisation=other_org, role="viewer")
    for path in ("/mail-admin/acme/suspend/", "/mail-admin/acme/unsuspend/"):
        assert owner_client.post(path).status_code == 403
    assert owner_client.post("/mail-admin/globex/suspend/").status_code == 404
    assert not Organisation.objects.filter(suspended_at__isnull=False).exists()
