import datetime as dt

import pytest
from django.utils import timezone

from tenants.models import ApiToken, AuditEvent
from tests.api.conftest import ApiClient, make_token, person_for, queries_for

pytestmark = pytest.mark.django_db


def test_it_creates_a_token_shown_once_and_stored_hashed(tenant):
    response = person_for(tenant.organisation).post(
        "/tokens", {"name": "deploy", "read_only": True}
    )
    assert response.status_code == 201
    body = response.json()
    secret = body["token"]
    assert secret.startswith("mh_") and body["read_only"] is True and body["usable"] is True
    stored = ApiToken.objects.get(pk=body["id"])
    assert stored.token_hash == ApiToken.hash(secret) and secret not in str(stored.__dict__)
    listed = tenant.rw.get("/tokens").json()["items"]
    assert secret not in str(listed) and "deploy" in [t["name"] for t in listed]
    assert ApiClient(secret).get("/domains").status_code == 200
    assert ApiClient(secret).post("/domains", {"name": "x.test"}).status_code == 403


def test_it_creates_a_token_that_expires(tenant):
    person = person_for(tenant.organisation)
    soon = (timezone.now() + dt.timedelta(days=1)).isoformat()
    response = person.post("/tokens", {"name": "temp", "expires_at": soon})
    assert response.status_code == 201 and response.json()["expires_at"]
    past = person.post("/tokens", {"name": "temp", "expires_at": "2000-01-01T00:00:00Z"})
    assert past.status_code == 422 and past.json()["field"] == "expires_at"
    naive = person.post("/tokens", {"name": "temp", "expires_at": "2099-01-01T00:00:00"})
    assert naive.status_code == 422 and naive.json()["field"] == "expires_at"


def test_it_revokes_a_token_at_once(tenant):
    secret = make_token(tenant.organisation, name="doomed")
    token = ApiToken.objects.get(name="doomed")
    assert ApiClient(secret).get("/domains").status_code == 200
    person = person_for(tenant.organisation)
    response = person.delete(f"/tokens/{token.pk}")
    assert response.status_code == 200
    assert response.json()["revoked_at"] and response.json()["usable"] is False
    assert ApiClient(secret).get("/domains").status_code == 401
    assert AuditEvent.objects.filter(action="api_token.revoke").count() == 1
    assert person.delete(f"/tokens/{token.pk}").status_code == 200  # again: no change
    assert AuditEvent.objects.filter(action="api_token.revoke").count() == 1


def test_it_records_the_last_use(tenant):
    token = ApiToken.objects.get(name="spare")
    assert token.last_used_at is None
    secret = make_token(tenant.organisation, name="used")
    ApiClient(secret).get("/domains")
    assert ApiToken.objects.get(name="used").last_used_at is not None


def test_it_hides_revoked_tokens_unless_asked(tenant):
    person_for(tenant.organisation).delete(f"/tokens/{tenant.spare_token.pk}")
    names = [t["name"] for t in tenant.rw.get("/tokens").json()["items"]]
    assert "spare" not in names
    everything = tenant.rw.get("/tokens", {"include_revoked": "true"}).json()["items"]
    assert "spare" in [t["name"] for t in everything]


def test_it_lists_with_the_same_number_of_queries_at_any_page_size(tenant):
    few = queries_for(tenant.rw, "/tokens")
    for n in range(8):
        make_token(tenant.organisation, name=f"t{n}")
    assert queries_for(tenant.rw, "/tokens") == few
