import datetime as dt

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import RequestFactory
from django.test.client import encode_multipart
from django.utils import timezone

from mailboxes.models import Domain, Mailbox
from tenants.idempotency import fingerprint
from tenants.models import ApiToken, AuditEvent, IdempotencyRecord
from tests.api.conftest import ApiClient, make_token, person_for

pytestmark = pytest.mark.django_db

KEY = {"Idempotency-Key": "9b2d4c1e-5a7f-4e0b-8c3d-2f6a1b9e7d05"}


def test_it_replays_the_first_response_to_the_same_key_and_body(tenant):
    body = {"address": "bob@acme.test"}
    first = tenant.rw.post("/mailboxes", body, headers=KEY)
    again = tenant.rw.post("/mailboxes", {"address": "bob@acme.test"}, headers=KEY)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()  # the generated password too: the retry lost it
    assert again["Idempotent-Replayed"] == "true"
    assert Mailbox.objects.filter(local_part="bob").count() == 1
    assert AuditEvent.objects.filter(action="mailbox.create").count() == 1


def test_it_keeps_the_stored_response_encrypted(tenant):
    password = tenant.rw.post("/mailboxes", {"address": "bob@acme.test"}, headers=KEY).json()[
        "password"
    ]
    record = IdempotencyRecord.objects.get()
    assert record.status_code == 201 and password not in record.body_encrypted


def test_it_answers_422_to_the_same_key_with_another_body(tenant):
    tenant.rw.post("/mailboxes", {"address": "bob@acme.test"}, headers=KEY)
    response = tenant.rw.post("/mailboxes", {"address": "carol@acme.test"}, headers=KEY)
    assert response.status_code == 422
    assert response.json()["code"] == "idempotency_key_reused"
    assert response.json()["field"] == "Idempotency-Key"
    assert not Mailbox.objects.filter(local_part="carol").exists()
    elsewhere = tenant.rw.post(
        "/aliases", {"address": "x@acme.test", "destinations": ["a@b.test"]}, headers=KEY
    )
    assert elsewhere.status_code == 422


def test_it_scopes_keys_to_the_token(tenant):
    tenant.rw.post("/domains", {"name": "one.test"}, headers=KEY)
    other_token = make_token(tenant.organisation, name="other-rw")
    response = ApiClient(other_token).post("/domains", {"name": "two.test"}, headers=KEY)
    assert response.status_code == 201
    assert set(Domain.objects.values_list("name", flat=True)) >= {"one.test", "two.test"}


def test_it_forgets_a_key_after_24_hours(tenant):
    person = person_for(tenant.organisation)  # tokens are created by people
    person.post("/tokens", {"name": "ci"}, headers=KEY)
    IdempotencyRecord.objects.update(created_at=timezone.now() - dt.timedelta(hours=24, seconds=1))
    again = person.post("/tokens", {"name": "ci"}, headers=KEY)
    assert again.status_code == 201 and "Idempotent-Replayed" not in again
    assert ApiToken.objects.filter(name="ci").count() == 2


def test_it_answers_409_while_the_first_request_is_still_running(tenant):
    person = person_for(tenant.organisation)
    first = person.post("/tokens", {"name": "ci"}, headers=KEY)
    IdempotencyRecord.objects.update(status_code=None, body_encrypted="")
    response = person.post("/tokens", {"name": "ci"}, headers=KEY)
    assert first.status_code == 201
    assert response.status_code == 409 and response.json()["code"] == "idempotency_in_progress"


def test_it_does_not_keep_refusals_a_retry_might_pass(tenant):
    assert tenant.ro.post("/tokens", {"name": "ci"}, headers=KEY).status_code == 403
    assert not IdempotencyRecord.objects.exists()


def test_it_refuses_a_malformed_key(tenant):
    response = tenant.rw.post("/tokens", {"name": "ci"}, headers={"Idempotency-Key": "x" * 256})
    assert response.status_code == 422 and response.json()["field"] == "Idempotency-Key"


def test_it_compares_a_multipart_upload_by_its_content_not_its_boundary(tenant):
    def request_with(boundary: str, content: bytes):
        body = encode_multipart(boundary, {"file": SimpleUploadedFile("logo.svg", content)})
        request = RequestFactory().generic(
            "POST", "/api/v1/domains/acme.test/bimi", body,
            content_type=f"multipart/form-data; boundary={boundary}",
        )
        request.FILES  # noqa: B018  (parsed, as ninja does before the route runs)
        return request

    same = fingerprint(request_with("aaaa", b"<svg/>"))
    assert fingerprint(request_with("bbbb", b"<svg/>")) == same
    assert fingerprint(request_with("aaaa", b"<svg></svg>")) != same


def test_it_documents_the_header_on_every_post(anonymous):
    schema = anonymous.get("/openapi.json").json()
    posts = [ops["post"] for ops in schema["paths"].values() if "post" in ops]
    assert posts
    for operation in posts:
        names = [p["name"] for p in operation.get("parameters", [])]
        assert "Idempotency-Key" in names
