"""The doors of a domain move (issue 19): the staff API, the domain page and `movedomain`.
Rows only (the nodes are never started); the move itself is tests/multinode/test_move.py."""

import pytest
from django.core.management import CommandError, call_command

from mailboxes.services import moves
from nodes.changes import node_default
from nodes.models import DomainMove, MailNode
from tests.api.conftest import ApiClient, make_token
from tests.api.test_domains import staff_api
from tests.factories import DomainFactory, MembershipFactory, OrganisationFactory, UserFactory
from tests.pages.conftest import client_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def scheduled(monkeypatch):
    """The driver is not run here: what would have been scheduled."""
    calls = []
    monkeypatch.setattr(moves, "schedule_move", lambda move_id, countdown=0: calls.append(move_id))
    return calls


@pytest.fixture
def domain(db, django_capture_on_commit_callbacks):
    local = node_default()
    MailNode.objects.filter(pk=local.pk).update(smtp_host="10.0.0.1")
    MailNode.objects.create(name="node-b", state_dir="/tmp/mh-never-b", smtp_host="10.0.0.2")
    org = OrganisationFactory(slug="acme")
    return DomainFactory(organisation=org, node=local, name="moving.test")


def test_staff_start_a_move_with_the_api_and_follow_it(domain, scheduled,
                                                       django_capture_on_commit_callbacks):
    staff = staff_api()
    before = staff.get("/staff/domains/moving.test/move")
    assert before.status_code == 200
    assert before.json() == {"domain": "moving.test", "node": "local", "move": None}
    with django_capture_on_commit_callbacks(execute=True):
        started = staff.post("/staff/domains/moving.test/move", {"node": "node-b"})
    assert started.status_code == 202, started.content
    body = started.json()
    assert (body["source"], body["target"], body["step"]) == ("local", "node-b", "queued")
    move = DomainMove.objects.get(domain_id=domain.pk)
    assert scheduled == [move.pk]
    again = staff.post("/staff/domains/moving.test/move", {"node": "node-b"})
    assert again.status_code == 409 and again.json()["code"] == "move_open"
    progress = staff.get("/staff/domains/moving.test/move").json()
    assert progress["move"]["step"] == "queued" and progress["node"] == "local"
    unknown = staff.post("/staff/domains/moving.test/move", {"node": "nowhere"})
    assert unknown.status_code in (409, 422)


def test_a_move_needs_another_node_and_one_open_move_per_domain(domain, scheduled):
    staff = staff_api()
    here = staff.post("/staff/domains/moving.test/move", {"node": "local"})
    assert here.status_code == 409 and here.json()["code"] == "already_there"
    unknown = staff.post("/staff/domains/moving.test/move", {"node": "nowhere"})
    assert unknown.status_code == 422 and unknown.json()["code"] == "unknown_node"
    MailNode.objects.filter(name="node-b").update(smtp_host="")
    unreachable = staff.post("/staff/domains/moving.test/move", {"node": "node-b"})
    assert unreachable.status_code == 422 and unreachable.json()["code"] == "node_unreachable"
    assert not DomainMove.objects.exists()


def test_a_tenant_can_neither_start_nor_see_a_move(domain, scheduled):
    tenant = ApiClient(make_token(domain.organisation))
    refused = tenant.post("/staff/domains/moving.test/move", {"node": "node-b"})
    assert refused.status_code in (401, 403)
    assert tenant.get("/staff/domains/moving.test/move").status_code in (401, 403)
    owner = client_for(MembershipFactory(organisation=domain.organisation, role="owner").user)
    page = owner.get("/mail-admin/acme/domains/moving.test/").content.decode()
    assert "Mail node" not in page and "Move to" not in page
    response = owner.post("/mail-admin/acme/domains/moving.test/move/",
                          {"node": "node-b", "confirmed": "1"})
    assert response.status_code in (403, 404)
    assert not DomainMove.objects.exists()


def test_staff_move_a_domain_from_its_page_after_confirming(domain, scheduled):
    staff = client_for(UserFactory(is_superuser=True, is_staff=True))
    page = staff.get("/mail-admin/acme/domains/moving.test/").content.decode()
    assert "Lives on <strong>local</strong>" in page and '<option value="node-b">' in page
    asked = staff.post("/mail-admin/acme/domains/moving.test/move/", {"node": "node-b"})
    assert asked.status_code == 200 and "Move moving.test to node-b?" in asked.content.decode()
    assert not DomainMove.objects.exists()
    done = staff.post("/mail-admin/acme/domains/moving.test/move/",
                      {"node": "node-b", "confirmed": "1"})
    assert done.status_code == 302
    move = DomainMove.objects.get(domain_id=domain.pk)
    DomainMove.objects.filter(pk=move.pk).update(step="copying", mailboxes_total=3,
                                                 mailboxes_done=1)
    page = staff.get("/mail-admin/acme/domains/moving.test/").content.decode()
    assert "step <strong>Copying</strong>" in page and "mailboxes copied 1 of 3" in page


def test_the_command_starts_shows_and_resumes_a_move(domain, scheduled, capsys):
    with pytest.raises(CommandError, match="no mail node named 'nowhere'"):
        call_command("movedomain", "moving.test", "nowhere")
    call_command("movedomain", "moving.test", "node-b")
    move = DomainMove.objects.get(domain_id=domain.pk)
    DomainMove.objects.filter(pk=move.pk).update(step="failed", failed_step="final_sync",
                                                 attempts=5, last_error="doveadm refused")
    call_command("movedomain", "moving.test", "--status")
    assert "step failed (at final_sync)" in capsys.readouterr().out
    call_command("movedomain", "moving.test", "--resume")
    move.refresh_from_db()
    assert (move.step, move.attempts, move.failed_step) == ("final_sync", 0, "")
    assert scheduled[-1] == move.pk
