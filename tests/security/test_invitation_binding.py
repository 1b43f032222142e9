"""Finding 10: an invitation is accepted only by the verified owner of the invited address.

The attack: a signed-in user who got hold of the link (forwarded, leaked, shoulder-read) opens
it and becomes an admin of someone else's organisation.
"""

import pytest
from allauth.account.models import EmailAddress
from django.test import Client

from tenants.models import AuditEvent, Invitation, Membership
from tests.factories import MembershipFactory, OrganisationFactory, UserFactory

pytestmark = pytest.mark.django_db
INVITED = "victim@corp.test"


def signed_in(email: str, *, verified: bool | None = True, address: str | None = None):
    """A user signed in to the portal; `address` (default: their e-mail) as an allauth
    EmailAddress, verified or not (None: no EmailAddress row at all)."""
    user = UserFactory(email=email, username=email)
    user.save()
    if verified is not None:
        EmailAddress.objects.create(user=user, email=address or email, verified=verified)
    client = Client()
    client.force_login(user)
    return user, client


@pytest.fixture
def link(db):
    """An owner of Acme invites INVITED as admin; returns the path in the e-mail."""
    organisation = OrganisationFactory(slug="acme", name="Acme")
    owner = MembershipFactory(organisation=organisation, role="owner").user
    owner.save()
    client = Client()
    client.force_login(owner)
    response = client.post("/mail-admin/acme/members/", {"email": INVITED, "role": "admin"})
    return response.context["link"].split("testserver", 1)[1]


def _nothing_changed(user) -> None:
    assert not Membership.objects.filter(user=user).exists()
    invitation = Invitation.objects.get(email=INVITED)
    assert invitation.accepted_at is None


def test_it_refuses_another_signed_in_user_holding_the_link(link):
    attacker, client = signed_in("attacker@evil.test")

    response = client.post(link)

    assert response.status_code == 403
    assert b"sent to another e-mail address" in response.content
    _nothing_changed(attacker)
    refused = AuditEvent.objects.get(action="invitation.accept_refused")
    assert refused.actor_user == attacker and refused.target == INVITED
    assert refused.organisation.slug == "acme"
    assert not AuditEvent.objects.filter(action="invitation.accept").exists()
    assert client.get("/mail-admin/acme/").status_code == 404


def test_it_refuses_an_unverified_copy_of_the_invited_address(link):
    attacker, client = signed_in("attacker@evil.test")
    EmailAddress.objects.create(user=attacker, email=INVITED, verified=False)
    response = client.post(link)
    assert response.status_code == 403 and b"Verify" in response.content
    _nothing_changed(attacker)


def test_it_refuses_a_user_whose_profile_email_merely_says_the_address(link):
    attacker, client = signed_in(INVITED, verified=None)
    response = client.post(link)
    assert response.status_code == 403
    _nothing_changed(attacker)


def test_it_lets_the_verified_owner_of_the_address_join_in_any_case(link):
    invited, client = signed_in("Victim@Corp.test")
    assert client.post(link).status_code == 302
    assert Membership.objects.get(user=invited).role == "admin"
    assert AuditEvent.objects.get(action="invitation.accept").actor_user == invited
    assert client.post(link).status_code == 404  # used up


def test_it_still_works_for_the_invitee_after_an_attacker_tried(link):
    _, attacker = signed_in("attacker@evil.test")
    assert attacker.post(link).status_code == 403
    invited, client = signed_in(INVITED)
    assert client.post(link).status_code == 302
    assert Membership.objects.filter(user=invited, role="admin").exists()
