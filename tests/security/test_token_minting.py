"""Finding 11: an API token cannot mint API tokens (nor revoke others): people manage tokens.

The attack: a token that expires in five minutes asks for a non-expiring admin token, so that
access survives the first token's expiry and revocation.
"""

import datetime as dt

import pytest
from django.utils import timezone

from tenants.access import SYSTEM
from tenants.models import ApiToken, AuditEvent
from tenants.services import api_token_create
from tests.api.conftest import ApiClient, make_tenant
from tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def tenant(db):
    return make_tenant("acme")


@pytest.fixture
def short_lived(tenant) -> tuple[ApiToken, ApiClient]:
    token, raw = api_token_create(
        actor=SYSTEM, organisation=tenant.organisation, name="ci-5min",
        expires_at=timezone.now() + dt.timedelta(minutes=5),
    )
    return token, ApiClient(raw)


def test_it_refuses_a_token_minting_a_longer_lived_admin_token(tenant, short_lived):
    parent, attacker = short_lived
    tokens_before = set(ApiToken.objects.values_list("pk", flat=True))

    response = attacker.post("/tokens", {"name": "persist", "read_only": False})

    assert response.status_code == 403
    assert response.json()["code"] == "token_cannot_create_tokens"
    assert "token" not in response.json()
    assert set(ApiToken.objects.values_list("pk", flat=True)) == tokens_before
    assert not AuditEvent.objects.filter(action="api_token.create", target__startswith="persist")


def test_it_leaves_the_attacker_nothing_once_the_parent_is_revoked(tenant, short_lived):
    parent, attacker = short_lived
    sooner = (timezone.now() + dt.timedelta(minutes=1)).isoformat()
    narrower = [
        {"name": "a"}, {"name": "b", "read_only": True}, {"name": "c", "expires_at": sooner}
    ]
    for body in narrower:
        assert attacker.post("/tokens", body).status_code == 403
    tenant.rw.client.force_login(_owner(tenant))
    person = ApiClient(client=tenant.rw.client)
    assert person.delete(f"/tokens/{parent.pk}").status_code == 200
    assert attacker.get("/domains").status_code == 401
    usable = [t for t in ApiToken.objects.filter(organisation=tenant.organisation) if t.is_usable()]
    assert {t.name for t in usable} == {"spare", "rw", "ro"}


def test_it_refuses_a_token_revoking_another_token(tenant, short_lived):
    _, attacker = short_lived
    response = attacker.delete(f"/tokens/{tenant.spare_token.pk}")
    assert response.status_code == 403
    tenant.spare_token.refresh_from_db()
    assert tenant.spare_token.revoked_at is None
    assert not AuditEvent.objects.filter(action="api_token.revoke").exists()


def test_it_lets_a_token_revoke_itself(tenant, short_lived):
    parent, holder = short_lived
    assert holder.delete(f"/tokens/{parent.pk}").status_code == 200
    assert holder.get("/domains").status_code == 401
    assert AuditEvent.objects.get(action="api_token.revoke").actor_token_id == parent.pk


def test_it_lets_a_read_only_token_revoke_itself(tenant):
    token = ApiToken.objects.get(name="ro")
    assert tenant.ro.delete(f"/tokens/{token.pk}").status_code == 200
    assert tenant.ro.get("/domains").status_code == 401


def _owner(tenant):
    user = MembershipFactory(organisation=tenant.organisation, role="owner").user
    user.save()
    return user


def test_it_lets_a_signed_in_person_create_a_token_through_the_api(tenant):
    tenant.rw.client.force_login(_owner(tenant))
    person = ApiClient(client=tenant.rw.client)
    response = person.post("/tokens", {"name": "deploy"})
    assert response.status_code == 201
    assert ApiClient(response.json()["token"]).get("/domains").status_code == 200
