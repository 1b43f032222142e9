import pytest
from django.db import connection

from mailboxes.models import Mailbox
from mailhost.passwords import verify_password
from tests.api.conftest import make_tenant

pytestmark = pytest.mark.django_db


def test_it_creates_many_mailboxes_with_a_result_per_row(tenant):
    rows = [
        {"address": "bob@acme.test"},
        {"address": "carol@acme.test", "password": "carols own secret", "quota_mb": 10},
        {"address": "alice@acme.test", "display_name": "Alice"},  # exists
        {"address": "alice@acme.test", "quota_mb": 1},  # exists (nothing is compared)
        {"address": "info@acme.test"},  # an alias holds it
        {"address": "dave@globex.test"},  # another organisation's domain
        {"address": "bad..name@acme.test"},
    ]
    response = tenant.rw.post("/mailboxes/bulk", {"mailboxes": rows})
    assert response.status_code == 200
    body = response.json()
    assert (body["created"], body["existing"], body["failed"]) == (2, 2, 3)
    results = body["results"]
    assert [(r["index"], r["result"], r["status"]) for r in results] == [
        (0, "created", 201), (1, "created", 201), (2, "exists", 409), (3, "exists", 409),
        (4, "failed", 409), (5, "failed", 404), (6, "failed", 422),
    ]
    bob = Mailbox.objects.get(local_part="bob")
    assert verify_password(results[0]["password"], bob.password_hash)
    assert results[1]["password"] is None and results[2]["password"] is None
    assert results[0]["mailbox"]["address"] == "bob@acme.test"
    assert results[2]["error"] == results[3]["error"]  # the same answer, whatever was sent
    assert results[3]["error"]["code"] == "address_taken"
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


@pytest.fixture
def database_dies_at_row(db):
    """A trigger that kills this request's own database session (as a restart or a network
    cut would) when the row with the given local part is inserted; dropped afterwards."""
    if connection.vendor != "postgresql":
        pytest.skip("pg_terminate_backend is PostgreSQL's")
    created = []

    def arm(local_part: str) -> None:
        with connection.cursor() as cursor:
            cursor.execute(
                "CREATE FUNCTION test_die() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                f"IF NEW.local_part = '{local_part}' THEN "
                "PERFORM pg_terminate_backend(pg_backend_pid()); END IF; RETURN NEW; END $$;"
                "CREATE TRIGGER test_die BEFORE INSERT ON mailboxes_mailbox "
                "FOR EACH ROW EXECUTE FUNCTION test_die();"
            )
        created.append(local_part)

    yield arm
    connection.close()
    if created:
        with connection.cursor() as cursor:
            cursor.execute("DROP TRIGGER IF EXISTS test_die ON mailboxes_mailbox;"
                           "DROP FUNCTION IF EXISTS test_die();")


@pytest.mark.django_db(transaction=True)
def test_it_answers_row_by_row_what_it_committed_when_the_database_dies_part_way(
    database_dies_at_row,
):
    tenant = make_tenant("acme")
    rows = [{"address": f"user{n}@acme.test"} for n in range(120)]
    database_dies_at_row("user100")

    response = tenant.rw.post("/mailboxes/bulk", {"mailboxes": rows})
    connection.close()  # the request's session was killed; the assertions use a new one

    assert response.status_code == 200
    body = response.json()
    assert body["code"] == "bulk_interrupted" and "nothing" not in body["detail"]
    results = body["results"]
    assert [r["index"] for r in results] == list(range(120))
    created = [r for r in results if r["result"] == "created"]
    stored = {m.address: m for m in Mailbox.objects.filter(domain=tenant.domain)}
    assert 0 < len(created) <= 100 and body["created"] == len(created)
    # Exactly the committed rows are "created", each with the password that now works ...
    assert {r["address"] for r in created} == set(stored) - {"alice@acme.test", "gone@acme.test"}
    for row in created:
        assert verify_password(row["password"], stored[row["address"]].password_hash)
    # ... and every other row says it was not written and can be retried.
    rest = results[len(created):]
    assert {(r["result"], r["status"], r["error"]["code"]) for r in rest} == {
        ("failed", 503, "database_unavailable")
    }
