"""Errors are JSON {code, detail, field?} with a real status, never a stack trace."""

import json
import time
from types import SimpleNamespace

import pytest
from django.test import Client, override_settings

import mailhost.api
from mailboxes.models import Mailbox
from mailhost.redis import get_redis
from tests.api.conftest import ApiClient, database_down, make_token

pytestmark = pytest.mark.django_db


def test_it_answers_413_to_a_body_over_the_limit(tenant):
    with override_settings(API_MAX_BODY_BYTES=1000):
        response = tenant.rw.post(
            "/mailboxes", {"address": "bob@acme.test", "display_name": "x" * 1000}
        )
    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"
    assert not Mailbox.objects.filter(local_part="bob").exists()


def test_it_allows_the_bulk_endpoint_its_own_larger_limit(tenant):
    rows = [{"address": f"u{n}@acme.test", "password": "a long enough secret"} for n in range(40)]
    body = {"mailboxes": rows}
    assert len(json.dumps(body)) > 2000
    # Larger than the API default and than Django's own site-wide cap on request bodies.
    with override_settings(API_MAX_BODY_BYTES=1000, DATA_UPLOAD_MAX_MEMORY_SIZE=1500):
        assert tenant.rw.post("/mailboxes/bulk", body).status_code == 200
    with override_settings(API_BULK_MAX_BODY_BYTES=1000):
        too_big = tenant.rw.post("/mailboxes/bulk", body)
    assert too_big.status_code == 413 and too_big.json()["code"] == "payload_too_large"


@override_settings(API_RATE_LIMIT=3, API_RATE_LIMIT_WINDOW_SECONDS=60)
def test_it_answers_429_with_retry_after_past_the_tokens_rate_limit(tenant, monkeypatch):
    # The window is fixed (counted per minute): requests that straddle a minute's end are
    # counted in two windows. The limiter's clock stands 20 s into a window for this test.
    now = (time.time() // 60 + 1) * 60 + 20
    monkeypatch.setattr(mailhost.api, "time", SimpleNamespace(time=lambda: now))
    for _ in range(3):
        assert tenant.rw.get("/domains").status_code == 200
    response = tenant.rw.get("/domains")
    assert response.status_code == 429
    assert response.json()["code"] == "rate_limited"
    assert int(response["Retry-After"]) == 40
    assert tenant.ro.get("/domains").status_code == 200  # another token has its own budget


@override_settings(API_RATE_LIMIT=1, REDIS_URL="redis://127.0.0.1:1/0")
def test_it_lets_requests_through_when_redis_is_down(tenant):
    get_redis.cache_clear()
    try:
        assert [tenant.rw.get("/domains").status_code for _ in range(3)] == [200, 200, 200]
    finally:
        get_redis.cache_clear()


@pytest.mark.django_db(transaction=True)
def test_it_answers_503_with_a_clear_message_when_the_database_is_down():
    from tests.api.conftest import make_tenant

    tenant = make_tenant("acme")
    with database_down():
        read = tenant.rw.get("/mailboxes")
        write = tenant.rw.post("/mailboxes", {"address": "bob@acme.test"})
    for response in (read, write):
        assert response.status_code == 503
        assert response.json()["code"] == "database_unavailable"
        assert "Traceback" not in response.content.decode()
        assert response["Retry-After"]
    assert tenant.rw.get("/mailboxes").status_code == 200  # and back once it is


def test_it_answers_json_for_unknown_paths_and_malformed_bodies(tenant):
    unknown = tenant.rw.get("/no/such/thing")
    assert unknown.status_code == 404 and unknown.json()["code"] == "not_found"
    malformed = Client().post(
        "/api/v1/mailboxes", "{not json", content_type="application/json",
        headers=tenant.rw.headers(),
    )
    assert malformed.status_code == 400 and malformed.json()["code"] == "bad_request"


def test_it_names_nested_fields_and_lists_every_error(tenant):
    response = tenant.rw.post(
        "/mailboxes/bulk",
        {"mailboxes": [{"address": "a@acme.test"}, {"address": 7, "quota_mb": True}]},
    )
    assert response.status_code == 422
    body = response.json()
    assert body["field"] == "mailboxes[1].address"
    assert {e["field"] for e in body["errors"]} == {"mailboxes[1].address", "mailboxes[1].quota_mb"}


def test_it_refuses_control_characters_in_text(tenant):
    response = tenant.rw.post("/tokens", {"name": "bad\x00name"})
    assert response.status_code == 422 and response.json()["field"] == "name"
    search = tenant.rw.get("/mailboxes", {"search": "a\nb"})
    assert search.status_code == 422 and search.json()["field"] == "search"


def test_it_hides_the_difference_between_missing_and_another_tenants(tenant, other):
    theirs = other.rw.get("/mailboxes/alice@acme.test")
    missing = other.rw.get("/mailboxes/nobody@globex.test")
    assert theirs.status_code == missing.status_code == 404
    assert theirs.json() == missing.json()
    secret = make_token(tenant.organisation, name="another")
    assert ApiClient(secret).get("/mailboxes/alice@globex.test").json() == missing.json()
