"""The queue for operators, on real deferred messages in the node's Postfix: each action
changes what `postqueue -j` shows; an organisation sees and acts on its own domains' messages
only (another tenant's are a 404 and stay as they were), a mere claim on a name shows nothing."""

import pytest

from mailboxes.services import domain_create
from mailhost.errors import NotFound
from routing.queue import queue_list, queue_list_all
from routing.services import queue_act
from tenants.access import SYSTEM, Actor
from tenants.models import AuditEvent
from tests.api.conftest import ApiClient, make_token
from tests.factories import MembershipFactory, OrganisationFactory, UserFactory
from tests.routing.support import postqueue
from tests.stack import wait_for

pytestmark = pytest.mark.stack


def test_it_lists_a_deferred_message_with_reason_age_and_next_attempt(deferred, stack_node):
    hosted, queue_id = deferred()

    (item,) = [i for i in queue_list(SYSTEM, hosted.domain.organisation)
               if i.entry.queue_id == queue_id]
    assert item.entry.queue == "deferred"
    assert "451 4.2.0" in item.entry.reason
    assert item.entry.next_attempt and item.entry.next_attempt >= item.entry.arrival
    assert item.organisation_id == hosted.domain.organisation_id


def test_hold_release_and_delete_change_postfixs_queue(deferred, mail_stack):
    hosted, queue_id = deferred()
    organisation = hosted.domain.organisation

    queue_act(actor=SYSTEM, organisation=organisation, queue_id=queue_id, action="hold")
    assert postqueue(mail_stack)[queue_id]["queue_name"] == "hold"

    queue_act(actor=SYSTEM, organisation=organisation, queue_id=queue_id, action="release")
    assert postqueue(mail_stack)[queue_id]["queue_name"] != "hold"

    queue_act(actor=SYSTEM, organisation=organisation, queue_id=queue_id, action="delete")
    assert queue_id not in postqueue(mail_stack)
    actions = set(AuditEvent.objects.filter(target__endswith=f":{queue_id}")
                  .values_list("action", flat=True))
    assert actions == {"queue.hold", "queue.release", "queue.delete"}


def test_retry_now_is_taken_by_postfix_and_audited(deferred, internet, mail_stack):
    """The harness retries deferred mail every 1–2 s, so a retry that Postfix ignored would
    look the same from the receiver: this checks Postfix took the request (postqueue -i
    exits 0 for a deferred message, which `act` requires) and the message is tried again."""
    hosted, queue_id = deferred("qr")
    to = postqueue(mail_stack)[queue_id]["recipients"][0]["address"]
    tried = internet.attempts[to]

    queue_act(actor=SYSTEM, organisation=hosted.domain.organisation, queue_id=queue_id,
              action="retry")

    wait_for(lambda: internet.attempts[to] > tried, timeout=30)
    assert AuditEvent.objects.filter(action="queue.retry", target__endswith=queue_id).exists()


def test_another_tenant_can_neither_see_nor_act_on_the_message(deferred, mail_stack):
    hosted, queue_id = deferred()
    other = OrganisationFactory()
    # A claim on the same name (unverified): it owns nothing of the name's mail.
    domain_create(actor=SYSTEM, organisation=other, name=hosted.name)
    admin = Actor(user=MembershipFactory(organisation=other, role="admin").user)

    assert queue_list(admin, other) == []
    for action in ("hold", "delete", "retry"):
        with pytest.raises(NotFound):
            queue_act(actor=admin, organisation=other, queue_id=queue_id, action=action)
    with pytest.raises(NotFound):
        queue_act(actor=admin, organisation=hosted.domain.organisation, queue_id=queue_id,
                  action="delete")
    with pytest.raises(NotFound):
        queue_list_all(admin)
    assert postqueue(mail_stack)[queue_id]["queue_name"] == "deferred"

    api = ApiClient(make_token(other))
    assert api.get("/queue").json() == []
    assert api.post(f"/queue/{queue_id}/delete").status_code == 404
    assert queue_id in postqueue(mail_stack)


def test_the_api_and_pages_show_and_act_for_the_owner(deferred, mail_stack, client):
    hosted, queue_id = deferred()
    organisation = hosted.domain.organisation
    viewer = ApiClient(make_token(organisation, read_only=True))
    listed = viewer.get("/queue", {"domain": hosted.name, "queue": "deferred"}).json()
    assert [item["queue_id"] for item in listed] == [queue_id]
    assert "451 4.2.0" in listed[0]["reason"] and listed[0]["next_attempt_at"]
    assert viewer.post(f"/queue/{queue_id}/hold").status_code == 403

    user = MembershipFactory(organisation=organisation, role="admin").user
    client.force_login(user)
    page = client.get(f"/mail-admin/{organisation.slug}/queue/")
    assert page.status_code == 200 and queue_id.encode() in page.content
    assert b"451 4.2.0" in page.content
    done = client.post(f"/mail-admin/{organisation.slug}/queue/{queue_id}/hold/")
    assert done.status_code == 302
    assert postqueue(mail_stack)[queue_id]["queue_name"] == "hold"

    writer = ApiClient(make_token(organisation))
    released = writer.post(f"/queue/{queue_id}/release")
    assert released.status_code == 200
    assert postqueue(mail_stack)[queue_id]["queue_name"] != "hold"


def test_staff_see_every_organisations_messages(deferred, client):
    _, first = deferred("qa")
    _, second = deferred("qb")
    staff = UserFactory(is_superuser=True, is_staff=True)
    ids = {item.entry.queue_id for item in queue_list_all(Actor(user=staff))}
    assert {first, second} <= ids
    client.force_login(staff)
    page = client.get("/mail-admin/queue/")
    assert page.status_code == 200
    assert first.encode() in page.content and second.encode() in page.content
