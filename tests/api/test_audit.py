import datetime as dt

import pytest
from django.utils import timezone

from tenants.models import AuditEvent
from tests.api.conftest import queries_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def history(tenant):
    tenant.rw.post("/mailboxes", {"address": "bob@acme.test"})
    tenant.rw.post("/mailboxes/bob@acme.test/suspend")
    tenant.rw.post("/aliases", {"address": "sales@acme.test", "destinations": ["bob@acme.test"]})
    return tenant


def test_it_shows_who_did_what_newest_first(history):
    items = history.rw.get("/audit").json()["items"]
    assert [e["action"] for e in items[:3]] == ["alias.create", "mailbox.status", "mailbox.create"]
    newest = items[0]
    assert newest["actor_type"] == "token" and newest["actor"].startswith("token rw")
    assert newest["ip"] == "127.0.0.1" and newest["target"] == "sales@acme.test"


def test_it_filters_by_action_target_actor_and_time(history):
    def actions(**params):
        return [e["action"] for e in history.rw.get("/audit", params).json()["items"]]

    assert actions(action="mailbox.") == ["mailbox.status", "mailbox.create"]
    assert actions(target="sales") == ["alias.create"]
    assert set(actions(actor="system")) == {"api_token.create"}
    AuditEvent.objects.filter(action="mailbox.create").update(
        created_at=timezone.now() - dt.timedelta(days=2)
    )
    since = (timezone.now() - dt.timedelta(days=1)).isoformat()
    assert "mailbox.create" not in actions(since=since)
    assert actions(until=since) == ["mailbox.create"]


def test_it_shows_only_the_tokens_organisation(history, other):
    targets = [e["target"] for e in other.rw.get("/audit").json()["items"]]
    assert targets and not any("acme" in target for target in targets)


def test_it_lists_with_the_same_number_of_queries_at_any_page_size(history):
    few = queries_for(history.rw, "/audit")
    for n in range(6):
        history.rw.post("/aliases", {"address": f"a{n}@acme.test", "destinations": ["x@y.test"]})
    assert queries_for(history.rw, "/audit") == few
