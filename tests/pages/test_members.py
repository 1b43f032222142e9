from allauth.account.models import EmailAddress
from django.core import mail

from tenants.models import Invitation, Membership
from tests.factories import MembershipFactory
from tests.pages.conftest import client_for

BASE = "/mail-admin/acme/members/"


def test_it_lists_members_in_constant_queries(owner_client, org, assert_constant_queries):
    assert_constant_queries(
        owner_client,
        BASE,
        lambda: [MembershipFactory(organisation=org, role="viewer") for _ in range(10)],
    )


def test_it_invites_with_a_role_and_sends_the_link(
    owner_client, org, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = owner_client.post(BASE, {"email": "New@Person.test", "role": "admin"})
    assert response.status_code == 200
    invitation = Invitation.objects.get(email="new@person.test")
    assert invitation.role == "admin"
    link = response.context["link"]
    assert "/mail-admin/invitations/" in link
    assert len(mail.outbox) == 1 and link in mail.outbox[0].body
    assert b"new@person.test" in owner_client.get(BASE).content


def test_it_lets_the_invited_person_accept(owner_client, org, unused_user):
    EmailAddress.objects.create(user=unused_user, email=unused_user.email, verified=True)
    response = owner_client.post(BASE, {"email": unused_user.email, "role": "viewer"})
    path = response.context["link"].split("testserver", 1)[1]
    invited = client_for(unused_user)
    assert invited.get(path).status_code == 200
    assert invited.post(path).status_code == 302
    assert Membership.objects.get(user=unused_user, organisation=org).role == "viewer"
    assert invited.post(path).status_code == 404  # used up


def test_it_refuses_a_bad_invitation(owner_client, org):
    response = owner_client.post(BASE, {"email": "not-an-address", "role": "admin"})
    assert response.status_code == 422
    response = owner_client.post(BASE, {"email": "a@b.test", "role": "emperor"})
    assert response.status_code == 422


def test_it_lets_only_an_owner_invite(admin_client_, viewer_client, org):
    assert admin_client_.post(BASE, {"email": "a@b.test", "role": "admin"}).status_code == 403
    assert viewer_client.post(BASE, {"email": "a@b.test", "role": "admin"}).status_code == 403
    assert b"Send invitation" not in viewer_client.get(BASE).content
    assert not Invitation.objects.exists()


def test_it_changes_a_role_and_keeps_the_last_owner(owner_client, owner, org, viewer):
    member = Membership.objects.get(user=viewer)
    assert owner_client.post(f"{BASE}{member.pk}/role/", {"role": "admin"}).status_code == 302
    member.refresh_from_db()
    assert member.role == "admin"
    own = Membership.objects.get(user=owner)
    response = owner_client.post(f"{BASE}{own.pk}/role/", {"role": "viewer"})
    assert response.status_code == 422 and b"at least one owner" in response.content


def test_it_confirms_then_removes_a_member(owner_client, viewer):
    member = Membership.objects.get(user=viewer)
    assert b"Remove " in owner_client.get(f"{BASE}{member.pk}/remove/").content
    assert owner_client.post(f"{BASE}{member.pk}/remove/").status_code == 302
    assert not Membership.objects.filter(pk=member.pk).exists()


def test_it_forbids_a_viewer_to_change_members(viewer_client, owner):
    member = Membership.objects.get(user=owner)
    assert viewer_client.post(f"{BASE}{member.pk}/remove/").status_code == 403
    assert viewer_client.post(f"{BASE}{member.pk}/role/", {"role": "viewer"}).status_code == 403


def test_it_is_404_for_another_organisations_members(stranger_client, owner):
    member = Membership.objects.get(user=owner)
    assert stranger_client.get(BASE).status_code == 404
    assert stranger_client.post(f"{BASE}{member.pk}/remove/").status_code == 404


def _invite(owner_client, email="later@person.test") -> Invitation:
    owner_client.post(BASE, {"email": email, "role": "viewer"})
    return Invitation.objects.get(email=email)


def test_it_withdraws_an_invitation_after_confirmation(owner_client, org, unused_user):
    invitation = _invite(owner_client, unused_user.email)
    url = f"{BASE.replace('members/', '')}invitations/{invitation.pk}/revoke/"
    confirm = owner_client.get(url)
    assert confirm.status_code == 200 and b"Withdraw the invitation" in confirm.content
    assert Invitation.objects.filter(pk=invitation.pk).exists()  # a GET changes nothing
    assert owner_client.post(url).status_code == 302
    assert not Invitation.objects.filter(pk=invitation.pk).exists()


def test_it_lets_only_an_owner_withdraw_and_hides_other_tenants(
    owner_client, admin_client_, viewer_client, org
):
    invitation = _invite(owner_client)
    url = f"/mail-admin/acme/invitations/{invitation.pk}/revoke/"
    assert admin_client_.post(url).status_code == 403
    assert viewer_client.post(url).status_code == 403
    other = MembershipFactory(role="owner")
    outsider = client_for(other.user)
    assert (
        outsider.post(
            f"/mail-admin/{other.organisation.slug}/invitations/{invitation.pk}/revoke/"
        ).status_code
        == 404
    )
    assert Invitation.objects.filter(pk=invitation.pk).exists()
