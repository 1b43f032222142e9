import pytest

from mailboxes.models import Mailbox
from mailhost.passwords import verify_password

pytestmark = pytest.mark.django_db


def test_it_creates_many_mailboxes_with_a_result_per_row(tenant):
    rows = [
        {"address": "bob@acme.test"},
        {"address": "carol@acme.test", "password": "carols own secret", "quota_mb": 10},
        {"address": "alice@acme.test", "display_name": "Alice"},  # exists alike
        {"address": "alice@acme.test", "quota_mb": 1},  # exists, differently
        {"address": "info@acme.test"},  # an alias holds it
        {"address": "dave@globex.test"},  # another organisation's domain
        {"address": "bad..name@acme.test"},
    ]
    response = tenant.rw.post("/mailboxes/bulk", {"mailboxes": rows})
    assert response.status_code == 200
    body = response.json()
    assert (body["created"], body["existing"], body["failed"]) == (2, 1, 4)
    results = body["results"]
    assert [(r["index"], r["result"], r["status"]) for r in results] == [
        (0, "created", 201), (1, "created", 201), (2, "exists", 200), (3, "failed", 409),
        (4, "failed", 409), (5, "failed", 404), (6, "failed", 422),
    ]
    bob = Mailbox.objects.get(local_part="bob")
    assert verify_password(results[0]["password"], bob.password_hash)
    assert results[1]["password"] is None and results[2]["password"] is None
    assert results[0]["mailbox"]["address"] == "bob@acme.test"
    assert results[3]["error"]["field"] == "quota_mb"
    assert results[6]["error"]["field"] == "address"


def test_it_creates_all_or_nothing_when_atomic(tenant):
    rows = [{"address": "bob@acme.test"}, {"address": "info@acme.test"}]
    response = tenant.rw.post("/mailboxes/bulk", {"mailboxes": rows, "atomic": True})
    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "bulk_rolled_back"
    assert [r["result"] for r in body["results"]] == ["rolled_back", "failed"]
    assert body["results"][0]["password"] is None
    assert not Mailbox.objects.filter(local_part="bob").exists()

    rows = [{"address": "bob@acme.test"}, {"address": "carol@acme.test"}]
    done = tenant.rw.post("/mailboxes/bulk", {"mailboxes": rows, "atomic": True})
    assert done.status_code == 200 and done.json()["created"] == 2
    assert Mailbox.objects.filter(local_part__in=["bob", "carol"]).count() == 2


def test_it_accepts_up_to_the_entry_limit_and_no_more(tenant, settings):
    limit = settings.API_BULK_MAX_ENTRIES
    rows = [{"address": f"user{n}@acme.test"} for n in range(limit + 1)]
    response = tenant.rw.post("/mailboxes/bulk", {"mailboxes": rows})
    assert response.status_code == 422 and response.json()["field"] == "mailboxes"
    assert not Mailbox.objects.filter(local_part="user0").exists()


def test_it_answers_403_to_a_read_only_token_before_any_row(tenant):
    response = tenant.ro.post("/mailboxes/bulk", {"mailboxes": [{"address": "bob@acme.test"}]})
    assert response.status_code == 403


def test_it_creates_a_thousand_rows_in_one_request(tenant):
    rows = [{"address": f"user{n}@acme.test", "display_name": f"User {n}"} for n in range(1000)]
    response = tenant.rw.post("/mailboxes/bulk", {"mailboxes": rows})
    assert response.status_code == 200 and response.json()["created"] == 1000
    assert Mailbox.objects.filter(domain=tenant.domain, deleted_at=None).count() == 1001
