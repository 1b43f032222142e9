"""Staff tokens and organisation tokens never stand in for each other, and a suspended
organisation's tokens open nothing.

The attackers: a client's automation holding its organisation's read-write token, trying to
onboard or suspend organisations (its own or a competitor's) through the staff API; and a
leaked staff token tried on tenant endpoints, where it must not act as anyone's token.
Every endpoint is enumerated from the OpenAPI schema, so new ones are covered automatically.
"""

import datetime as dt
import re

import pytest
from django.core.management import call_command
from django.db import IntegrityError, transaction
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from mailboxes.models import Alias, Domain, Mailbox
from mailboxes.services import organisation_set_suspended
from mailhost.errors import Forbidden, NotFound
from mailhost.redis import get_redis
from tenants.access import SYSTEM, Actor, require_read, visible_organisations
from tenants.models import ApiToken, AuditEvent, Invitation, Organisation
from tenants.services import organisation_create, staff_token_create
from tests.api.conftest import ApiClient, make_tenant
from tests.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def tenant(db):
    return make_tenant("acme")


@pytest.fixture
def other(db):
    return make_tenant("globex")


@pytest.fixture
def anonymous():
    return ApiClient()


@pytest.fixture(autouse=True)
def _fresh_rate_limits():
    """Hundreds of requests from one token: start every test with empty rate-limit counters."""
    redis = get_redis()
    keys = list(redis.scan_iter("mailhost:api-rate:*"))
    if keys:
        redis.delete(*keys)


def operations(anonymous: ApiClient, *, staff: bool) -> list[tuple[str, str]]:
    """(method, path) of every authenticated operation, staff or not, with real-looking
    parameters filled in."""
    schema = anonymous.get("/openapi.json").json()
    found = []
    for path, methods in schema["paths"].items():
        if path.startswith("/api/v1/staff/") != staff:
            continue
        for method, operation in methods.items():
            if operation.get("security") == [] or path == "/api/v1/health":
                continue  # public
            filled = re.sub(r"\{(address|name|slug|token_id|selector)\}", lambda m: {
                "address": "alice@acme.test", "name": "acme.test", "slug": "acme",
                "token_id": "1", "selector": "mh20260101"}[m[1]], path)
            found.append((method.upper(), filled.removeprefix("/api/v1")))
    assert found
    return found


def state():
    return (
        list(Organisation.objects.order_by("pk").values_list("slug", "suspended_at")),
        list(Domain.objects.order_by("pk").values_list("name", "status")),
        list(Mailbox.objects.order_by("pk").values_list("local_part", "status", "deleted_at")),
        list(Alias.objects.order_by("pk").values_list("local_part", "destinations")),
        list(ApiToken.objects.order_by("pk").values_list("name", "revoked_at")),
        Invitation.objects.count(),
    )


@pytest.fixture
def staff_api():
    _, raw = staff_token_create(actor=SYSTEM, name="robot")
    return ApiClient(raw)


def test_it_refuses_an_organisations_token_on_every_staff_endpoint(tenant, other, anonymous):
    before = state()
    for method, path in operations(anonymous, staff=True):
        for client in (tenant.rw, tenant.ro, other.rw):
            response = client.send(method, path, {"slug": "evil", "name": "Evil"}
                                   if method == "POST" else None)
            assert response.status_code == 403, (method, path, response.content)
            assert response.json()["code"] == "staff_only"
    assert state() == before


def test_it_refuses_a_staff_token_on_every_other_endpoint(tenant, staff_api, anonymous):
    before = state()
    tried = operations(anonymous, staff=False)
    for method, path in tried:
        response = staff_api.send(method, path, {} if method in ("POST", "PATCH", "PUT") else None)
        assert response.status_code == 403, (method, path, response.content)
        assert response.json()["code"] == "staff_token"
    assert ("POST", "/mailboxes") in tried and ("GET", "/organisations") in tried
    assert state() == before


def test_it_refuses_a_signed_in_operator_who_is_not_staff_on_the_staff_api(tenant):
    owner = MembershipFactory(organisation=tenant.organisation, role="owner").user
    owner.save()
    client = Client()
    client.force_login(owner)
    response = ApiClient(client=client).get("/staff/organisations")
    assert response.status_code == 403 and response.json()["code"] == "staff_only"


def test_it_refuses_a_suspended_organisations_tokens_until_the_suspension_is_lifted(tenant):
    assert tenant.rw.get("/domains").status_code == 200
    organisation_set_suspended(actor=SYSTEM, organisation=tenant.organisation, suspended=True)

    for response in (tenant.rw.get("/domains"), tenant.ro.get("/mailboxes"),
                     tenant.rw.post("/mailboxes", {"address": "eve@acme.test"})):
        assert response.status_code == 403
        assert response.json()["code"] == "organisation_suspended"
    assert not Mailbox.objects.filter(local_part="eve").exists()

    organisation_set_suspended(actor=SYSTEM, organisation=tenant.organisation, suspended=False)
    assert tenant.rw.get("/domains").status_code == 200


def test_it_makes_a_staff_token_a_nobody_outside_the_staff_api(tenant):
    """Belt and braces under the door: an Actor built from a staff token by any other code
    path sees no organisation and may do nothing."""
    token, _ = staff_token_create(actor=SYSTEM, name="robot")
    actor = Actor(token=token)
    assert not actor.is_global
    assert not visible_organisations(actor).exists()
    with pytest.raises(NotFound):
        require_read(actor, tenant.organisation.pk)
    with pytest.raises(Forbidden):
        organisation_create(actor=actor, slug="evil", name="Evil")


def test_it_lets_no_token_mint_a_staff_token_and_no_member_onboard_or_suspend(tenant):
    token, _ = staff_token_create(actor=SYSTEM, name="robot")
    org_token = ApiToken.objects.get(organisation=tenant.organisation, name="rw")
    owner = MembershipFactory(organisation=tenant.organisation, role="owner").user
    for actor in (Actor(token=token, staff_api=True), Actor(token=org_token), Actor(user=owner)):
        with pytest.raises(Forbidden):
            staff_token_create(actor=actor, name="another")
    for actor in (Actor(token=org_token), Actor(user=owner)):
        with pytest.raises(Forbidden):
            organisation_create(actor=actor, slug="evil", name="Evil")
        with pytest.raises(Forbidden):
            organisation_set_suspended(actor=actor, organisation=tenant.organisation,
                                       suspended=True)
    assert ApiToken.objects.filter(staff=True).count() == 1
    assert not Organisation.objects.filter(suspended_at__isnull=False).exists()


def test_it_refuses_a_revoked_or_expired_staff_token(staff_api):
    assert staff_api.get("/staff/organisations").status_code == 200
    ApiToken.objects.filter(staff=True).update(revoked_at=timezone.now())
    assert staff_api.get("/staff/organisations").status_code == 401
    _, raw = staff_token_create(actor=SYSTEM, name="short-lived",
                                expires_at=timezone.now() + dt.timedelta(seconds=30))
    ApiToken.objects.filter(name="short-lived").update(expires_at=timezone.now())
    assert ApiClient(raw).get("/staff/organisations").status_code == 401


def test_it_keeps_staff_tokens_and_organisation_tokens_apart_in_the_database(tenant):
    for fields in ({"staff": True, "organisation": tenant.organisation},
                   {"staff": False, "organisation": None},
                   {"staff": True, "organisation": None, "read_only": True}):
        with pytest.raises(IntegrityError), transaction.atomic():
            ApiToken.objects.create(name="x", token_hash=str(fields), hint="mh_x", **fields)


def test_it_creates_a_staff_token_at_the_command_line_audited(capsys, tenant):
    call_command("createapitoken", "--staff", "--name", "robot")
    raw = capsys.readouterr().out.strip()
    assert ApiClient(raw).get("/staff/organisations").status_code == 200
    assert ApiClient(raw).get("/domains").status_code == 403
    event = AuditEvent.objects.get(action="api_token.create_staff")
    assert event.organisation_id is None and event.actor_label == "manage.py createapitoken"
    assert raw not in str(event.after)


def test_it_creates_a_staff_token_in_django_admin_and_shows_it_once(tenant):
    staff = UserFactory(is_staff=True, is_superuser=True)
    staff.save()
    client = Client()
    client.force_login(staff)
    add = reverse("admin:tenants_apitoken_add")
    assert client.get(add).status_code == 200

    response = client.post(add, {"name": "billing robot"})

    assert response.status_code == 200 and "no-store" in response["Cache-Control"]
    raw = re.search(r'<code id="staff-token">(mh_[^<]+)</code>', response.content.decode())[1]
    token = ApiToken.objects.get(name="billing robot")
    assert token.staff and token.organisation is None and token.token_hash == ApiToken.hash(raw)
    assert AuditEvent.objects.get(action="api_token.create_staff").actor_user == staff
    # An admin user without the superuser's rights cannot.
    clerk = UserFactory(is_staff=True)
    clerk.save()
    client.force_login(clerk)
    assert client.post(add, {"name": "sneaky"}).status_code == 403
    assert not ApiToken.objects.filter(name="sneaky").exists()
