"""Turning an organisation's encryption at rest on and off: the service, what the node is
given, and the three doors (staff API, staff page, admin). Only staff can; nobody else
changes anything. What the mail stack then does is tests/reconcile/test_encryption_at_rest.py.
"""

import base64

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_private_key, load_pem_public_key

from mailcrypt.models import MailCryptKey
from mailcrypt.services import organisation_set_encryption
from mailcrypt.snapshot import mail_crypt_keys
from mailhost import crypto
from mailhost.backend.mailcrypt import render_rows
from mailhost.errors import Forbidden
from nodes.changes import node_default
from nodes.models import NodeChange
from tenants.access import SYSTEM, Actor
from tenants.models import AuditEvent
from tenants.services import staff_token_create
from tests.api.conftest import ApiClient, make_token
from tests.factories import DomainFactory, MembershipFactory, OrganisationFactory, UserFactory
from tests.pages.conftest import client_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def org():
    organisation = OrganisationFactory(slug="acme", name="Acme Ltd")
    DomainFactory(organisation=organisation, name="acme.test")
    DomainFactory(organisation=organisation, name="acme-two.test")
    return organisation


@pytest.fixture
def other_org():
    organisation = OrganisationFactory(slug="globex", name="Globex")
    DomainFactory(organisation=organisation, name="globex.test")
    return organisation


def encryption_changes(org) -> int:
    return NodeChange.objects.filter(kind=NodeChange.Kind.MAIL_CRYPT, object_id=org.pk).count()


# --- the service and what the node is given -----------------------------------------------


def test_it_makes_an_ec_key_pair_wrapped_like_dkim_keys_the_first_time(org):
    key = organisation_set_encryption(actor=SYSTEM, organisation=org, enabled=True)

    private = load_pem_private_key(crypto.decrypt(key.private_key_encrypted), password=None)
    assert isinstance(private, ec.EllipticCurvePrivateKey)
    assert b"PRIVATE KEY" not in key.private_key_encrypted.encode()  # never stored in clear
    public = load_pem_public_key(key.public_key_pem.encode())
    assert public.public_numbers() == private.public_key().public_numbers()
    assert encryption_changes(org) == 1
    assert AuditEvent.objects.filter(organisation=org, action="organisation.encryption_on",
                                     after={"encrypt_at_rest": True}).exists()


def test_it_keeps_the_key_when_turned_off_and_changes_nothing_when_repeated(org):
    first = organisation_set_encryption(actor=SYSTEM, organisation=org, enabled=True)
    organisation_set_encryption(actor=SYSTEM, organisation=org, enabled=True)
    off = organisation_set_encryption(actor=SYSTEM, organisation=org, enabled=False)
    organisation_set_encryption(actor=SYSTEM, organisation=org, enabled=False)
    again = organisation_set_encryption(actor=SYSTEM, organisation=org, enabled=True)

    assert first.pk == off.pk == again.pk and MailCryptKey.objects.count() == 1
    assert off.private_key_encrypted == first.private_key_encrypted
    assert encryption_changes(org) == 3  # on, off, on: the repeats recorded nothing
    assert list(AuditEvent.objects.filter(organisation=org).order_by("id").values_list(
        "action", flat=True)) == ["organisation.encryption_on", "organisation.encryption_off",
                                  "organisation.encryption_on"]


def test_it_makes_no_key_for_an_organisation_turned_off_that_never_was_on(org):
    organisation_set_encryption(actor=SYSTEM, organisation=org, enabled=False)
    assert not MailCryptKey.objects.exists() and encryption_changes(org) == 0


def test_it_refuses_anyone_but_staff(org):
    member = MembershipFactory(organisation=org, role="owner").user
    with pytest.raises(Forbidden):
        organisation_set_encryption(actor=Actor(user=member), organisation=org, enabled=True)
    assert not MailCryptKey.objects.exists()


def test_it_gives_the_node_each_verified_domain_of_an_organisation_with_a_key(org, other_org):
    # Another organisation's unverified claim on the same name gets nothing of the key.
    DomainFactory(organisation=other_org, name="acme.test", verified_at=None,
                  verification_method="")
    DomainFactory(organisation=org, name="pending.test", verified_at=None,
                  verification_method="")
    organisation_set_encryption(actor=SYSTEM, organisation=org, enabled=True)

    snaps = mail_crypt_keys(node_default())

    assert [(s.domain, s.encrypt) for s in snaps] == [("acme-two.test", True),
                                                      ("acme.test", True)]
    key = MailCryptKey.objects.get(organisation=org)
    assert base64.b64decode(snaps[0].private_key_b64) == crypto.decrypt(
        key.private_key_encrypted)
    assert {row[3] for row in render_rows(snaps)} == {2}  # mail_crypt_save_version

    organisation_set_encryption(actor=SYSTEM, organisation=org, enabled=False)
    snaps = mail_crypt_keys(node_default())
    assert [(s.domain, s.encrypt) for s in snaps] == [("acme-two.test", False),
                                                      ("acme.test", False)]
    assert {row[3] for row in render_rows(snaps)} == {0}  # read only: old mail readable


# --- the staff API ------------------------------------------------------------------------


@pytest.fixture
def staff_api():
    _, raw = staff_token_create(actor=SYSTEM, name="robot")
    return ApiClient(raw)


def test_it_turns_encryption_on_and_off_through_the_staff_api(org, staff_api):
    path = "/staff/organisations/acme/encryption"
    assert staff_api.get(path).json() == {"enabled": False, "has_key": False}

    on = staff_api.send("PUT", path, {"enabled": True})
    assert on.status_code == 200 and on.json() == {"enabled": True, "has_key": True}
    off = staff_api.send("PUT", path, {"enabled": False})
    assert off.status_code == 200 and off.json() == {"enabled": False, "has_key": True}
    assert staff_api.get(path).json() == {"enabled": False, "has_key": True}


def test_it_refuses_the_staff_api_to_an_organisations_token_and_bad_input(org, staff_api):
    path = "/staff/organisations/acme/encryption"
    own_token = ApiClient(make_token(org))
    assert own_token.send("PUT", path, {"enabled": True}).status_code == 403
    assert own_token.get(path).status_code == 403
    assert staff_api.send("PUT", "/staff/organisations/nope/encryption",
                          {"enabled": True}).status_code == 404
    for body in ({"enabled": "maybe"}, {}, [True], {"enabled": None}):
        refused = staff_api.send("PUT", path, body)
        assert refused.status_code == 422, body
    assert not MailCryptKey.objects.exists()


# --- the staff page and the admin -----------------------------------------------------------


@pytest.fixture
def staff_client():
    return client_for(UserFactory(is_staff=True, is_superuser=True))


def test_it_lets_staff_turn_it_on_and_off_on_the_organisation_page(org, staff_client):
    page = "/mail-admin/acme/encryption/"
    assert b"Encryption at rest" in staff_client.get("/mail-admin/acme/").content
    confirm = staff_client.get(page)
    assert confirm.status_code == 200
    assert b"Encrypt Acme Ltd&#x27;s mail at rest?" in confirm.content

    assert staff_client.post(page, {"enabled": "on"}).status_code == 302
    assert MailCryptKey.objects.get(organisation=org).enabled
    assert b"Stop encrypting" in staff_client.get(page).content
    # A stale or repeated "on" leaves it on: the form names the state it asks for.
    assert staff_client.post(page, {"enabled": "on"}).status_code == 302
    assert MailCryptKey.objects.get(organisation=org).enabled

    assert staff_client.post(page, {"enabled": "off"}).status_code == 302
    assert not MailCryptKey.objects.get(organisation=org).enabled
    assert staff_client.post(page, {"enabled": "sideways"}).status_code == 422


def test_it_lets_no_member_change_it_on_the_page(org, other_org):
    owner = client_for(MembershipFactory(organisation=org, role="owner").user)
    assert owner.post("/mail-admin/acme/encryption/", {"enabled": "on"}).status_code == 403
    assert owner.get("/mail-admin/acme/encryption/").status_code == 403
    assert owner.post("/mail-admin/globex/encryption/", {"enabled": "on"}).status_code == 404
    assert b"Encryption at rest" not in owner.get("/mail-admin/acme/").content
    assert not MailCryptKey.objects.exists()


def test_it_lets_staff_turn_it_on_from_the_admin(org, other_org, staff_client):
    response = staff_client.post("/admin/tenants/organisation/", {
        "action": "encrypt_at_rest", "_selected_action": [org.pk],
    })
    assert response.status_code == 302
    assert list(MailCryptKey.objects.values_list("organisation__slug", "enabled")) == [
        ("acme", True)]
