"""Finding 12: creating a mailbox must not answer "is this its password?".

The attacker holds a read-write token of the organisation (a CI secret, a contractor's
script) and wants the password of alice@, a mailbox that exists: before the fix, POSTing
alice@ with a guess answered 200 when the guess was right and 409 when it was wrong, and a
bulk request tested thousands of guesses at once.
"""

import hashlib
import json

import pytest

from mailboxes.models import Mailbox
from mailhost.passwords import hash_password
from tenants.models import IdempotencyRecord
from tests.api.conftest import make_tenant

pytestmark = pytest.mark.django_db

ALICES_PASSWORD = "alices real password"
GUESSES = ["correct horse 1", "password123456", "winter2026!", ALICES_PASSWORD, "let-me-in-now"]


@pytest.fixture
def tenant():
    tenant = make_tenant("acme")
    Mailbox.objects.filter(pk=tenant.mailbox.pk).update(
        password_hash=hash_password(ALICES_PASSWORD, rounds=4)
    )
    return tenant


def test_it_answers_every_guess_alike_when_creating_an_existing_mailbox(tenant):
    stored = Mailbox.objects.get(pk=tenant.mailbox.pk).password_hash
    answers = []
    for guess in GUESSES:
        response = tenant.rw.post(
            "/mailboxes",
            {"address": "alice@acme.test", "password": guess, "display_name": "Alice"},
        )
        answers.append((response.status_code, response.json()))

    assert {status for status, _ in answers} == {409}
    assert all(body == answers[0][1] for _, body in answers)  # the right guess looks the same
    assert answers[0][1]["code"] == "address_taken"
    assert Mailbox.objects.get(pk=tenant.mailbox.pk).password_hash == stored


def test_it_answers_every_bulk_guess_alike(tenant):
    rows = [{"address": "alice@acme.test", "password": guess} for guess in GUESSES]
    response = tenant.rw.post("/mailboxes/bulk", {"mailboxes": rows})

    assert response.status_code == 200
    results = response.json()["results"]
    assert {(r["result"], r["status"], r["error"]["code"]) for r in results} == {
        ("exists", 409, "address_taken")
    }
    assert len({r["error"]["detail"] for r in results}) == 1
    assert all(r["mailbox"] is None and r["password"] is None for r in results)
    atomic = tenant.rw.post("/mailboxes/bulk", {"mailboxes": rows[3:4], "atomic": True})
    assert atomic.status_code == 422  # the right guess alone does not make an atomic bulk pass


def test_it_recognises_a_retry_by_its_idempotency_key_not_by_a_password(tenant):
    key = {"Idempotency-Key": "create-bob-1"}
    body = {"address": "bob@acme.test", "password": "bobs chosen password"}
    first = tenant.rw.post("/mailboxes", body, headers=key)
    assert first.status_code == 201

    replay = tenant.rw.post("/mailboxes", body, headers=key)
    assert replay.status_code == 201 and replay.json() == first.json()
    assert replay["Idempotent-Replayed"] == "true"
    # The same password without the key, or with another key, is not a retry.
    assert tenant.rw.post("/mailboxes", body).status_code == 409
    assert tenant.rw.post("/mailboxes", body, headers={"Idempotency-Key": "k2"}).status_code == 409
    # The key with another password is refused as a reused key, saying nothing of bob's.
    other = tenant.rw.post("/mailboxes", body | {"password": "a guess"}, headers=key)
    assert other.status_code == 422 and other.json()["code"] == "idempotency_key_reused"


def test_it_keeps_no_cheap_hash_of_a_chosen_password_in_idempotency_records(tenant):
    body = {"address": "bob@acme.test", "password": "bobs chosen password"}
    tenant.rw.post("/mailboxes", body, headers={"Idempotency-Key": "k1"})
    stored = IdempotencyRecord.objects.get(key="k1").fingerprint

    # With a copy of the database, the attacker hashes guessed bodies the way the server did.
    def unkeyed(guess: str) -> str:
        canonical = json.dumps(body | {"password": guess}, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(f"POST /api/v1/mailboxes\n{canonical}".encode()).hexdigest()

    assert all(unkeyed(guess) != stored for guess in [*GUESSES, "bobs chosen password"])
