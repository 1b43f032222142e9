import datetime as dt

import pytest
from django.test import Client
from django.utils import timezone
from django.utils.crypto import get_random_string

from mailboxes.models import Mailbox
from tenants.models import ApiToken
from tests.api.conftest import ApiClient
from tests.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_it_answers_401_without_a_usable_token(tenant):
    tenant.spare_token.revoked_at = timezone.now()
    tenant.spare_token.save()
    expired = ApiToken.objects.create(
        organisation=tenant.organisation, name="old", token_hash=ApiToken.hash("mh_expired"),
        hint="mh_expired", expires_at=timezone.now() - dt.timedelta(seconds=1),
    )
    assert expired.pk
    for client in (ApiClient(), ApiClient("mh_nonsense"), ApiClient("mh_expired")):
        response = client.get("/mailboxes")
        assert response.status_code == 401
        assert response.json()["code"] == "unauthenticated"
        assert response["WWW-Authenticate"].startswith("Bearer")
    basic = Client().get("/api/v1/mailboxes", headers={"Authorization": "Basic YTpi"})
    assert basic.status_code == 401
    post = ApiClient().post("/mailboxes", {"address": "x@acme.test"})
    assert post.status_code == 401  # not a CSRF 403: there is no session at all


def test_it_serves_the_health_and_the_schema_without_a_token(anonymous):
    assert anonymous.get("/openapi.json").status_code == 200
    assert anonymous.get("/docs").status_code == 200
    assert anonymous.get("/health").status_code in (200, 503)


def session_client(user, *, csrf: bool = True) -> tuple[Client, str]:
    user.save()  # the factory sets the password without saving; the session hash needs it saved
    client = Client(enforce_csrf_checks=csrf)
    client.force_login(user)
    secret = get_random_string(32)
    client.cookies["csrftoken"] = secret
    return client, secret


def test_it_accepts_a_signed_in_session_with_csrf_for_writes(tenant):
    user = UserFactory()
    MembershipFactory(user=user, organisation=tenant.organisation, role="admin")
    client, csrf = session_client(user)
    api = ApiClient(client=client)
    listed = api.get("/mailboxes")
    assert listed.status_code == 200 and listed.json()["count"] == 1
    refused = api.post("/mailboxes", {"address": "bob@acme.test"})
    assert refused.status_code == 403 and refused.json()["code"] == "csrf_failed"
    created = api.post("/mailboxes", {"address": "bob@acme.test"}, headers={"X-CSRFToken": csrf})
    assert created.status_code == 201
    assert tenant.rw.get("/audit").json()["items"][0]["actor"] == user.username


def test_it_answers_403_to_a_viewer_writing_in_a_session(tenant):
    user = UserFactory()
    MembershipFactory(user=user, organisation=tenant.organisation, role="viewer")
    client, csrf = session_client(user)
    api = ApiClient(client=client)
    assert api.get("/mailboxes/alice@acme.test").status_code == 200
    response = api.post("/mailboxes", {"address": "bob@acme.test"}, headers={"X-CSRFToken": csrf})
    assert response.status_code == 403 and response.json()["code"] == "forbidden"
    assert not Mailbox.objects.filter(local_part="bob").exists()


def test_it_asks_a_member_of_several_organisations_to_name_one(tenant, other):
    user = UserFactory()
    MembershipFactory(user=user, organisation=tenant.organisation, role="owner")
    MembershipFactory(user=user, organisation=other.organisation, role="owner")
    client, csrf = session_client(user)
    api = ApiClient(client=client)
    headers = {"X-CSRFToken": csrf}
    ambiguous = api.post("/domains", {"name": "new.test"}, headers=headers)
    assert ambiguous.status_code == 422 and ambiguous.json()["field"] == "organisation"
    named = api.post("/domains", {"name": "new.test", "organisation": "globex"}, headers=headers)
    assert named.status_code == 201 and named.json()["organisation"] == "globex"
    assert api.get("/mailboxes").json()["count"] == 2  # both organisations' mailboxes


def test_it_judges_a_request_with_a_bearer_token_by_the_token_alone(tenant):
    user = UserFactory(is_superuser=True)
    client, _ = session_client(user, csrf=False)
    response = ApiClient("mh_wrong", client=client).get("/mailboxes")
    assert response.status_code == 401
