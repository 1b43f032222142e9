"""Where postmaster@ and abuse@ go, chosen through the API: only an address of the
organisation that receives mail, by a writer, audited; another tenant's mailbox is refused
exactly like a missing one."""

import pytest

from mailboxes.models import Domain
from nodes.models import NodeChange
from tenants.models import AuditEvent

pytestmark = pytest.mark.django_db


def test_it_lists_the_role_addresses_and_routes_them_to_a_chosen_mailbox(tenant):
    before = NodeChange.objects.count()
    response = tenant.rw.patch("/domains/acme.test", {"role_target": "Alice@ACME.test"})

    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["role_target"] == "alice@acme.test"
    assert body["role_addresses"] == ["abuse@acme.test", "postmaster@acme.test"]
    assert Domain.objects.get(pk=tenant.domain.pk).role_target == "alice@acme.test"
    assert NodeChange.objects.count() > before  # on its way to the mail node
    event = AuditEvent.objects.filter(action="domain.update").latest("pk")
    assert (event.before["role_target"], event.after["role_target"]) == ("", "alice@acme.test")


def test_it_takes_an_alias_and_returns_to_the_automatic_choice(tenant):
    assert tenant.rw.patch("/domains/acme.test", {"role_target": "info@acme.test"}).json()[
        "role_target"
    ] == "info@acme.test"
    response = tenant.rw.patch("/domains/acme.test", {"role_target": ""})
    assert response.status_code == 200 and response.json()["role_target"] == ""


@pytest.mark.parametrize(
    "target",
    [
        "nobody@acme.test",  # no such mailbox: role mail would bounce
        "gone@acme.test",  # a deleted mailbox
        "postmaster@acme.test",  # a role address no mailbox holds: it would loop
        "someone@outside.example",  # not the organisation's: nothing says it receives
        "not an address",
    ],
)
def test_it_refuses_a_target_that_would_not_receive(tenant, target):
    response = tenant.rw.patch("/domains/acme.test", {"role_target": target})

    assert response.status_code == 422, response.json()
    assert response.json()["field"] == "role_target"
    assert Domain.objects.get(pk=tenant.domain.pk).role_target == ""
    assert not AuditEvent.objects.filter(action="domain.update").exists()


def test_it_refuses_another_tenants_mailbox_exactly_like_a_missing_one(tenant, other):
    theirs = tenant.rw.patch("/domains/acme.test", {"role_target": "alice@globex.test"})
    missing = tenant.rw.patch("/domains/acme.test", {"role_target": "nobody@globex.test"})

    assert theirs.status_code == missing.status_code == 422
    assert theirs.json()["code"] == missing.json()["code"] == "role_target_not_deliverable"
    assert theirs.json()["detail"].replace("alice", "nobody") == missing.json()["detail"]
    assert Domain.objects.get(pk=tenant.domain.pk).role_target == ""


def test_it_leaves_the_choice_to_writers(tenant, other):
    assert tenant.ro.patch("/domains/acme.test", {"role_target": "alice@acme.test"}).status_code \
        == 403
    assert other.rw.patch("/domains/acme.test", {"role_target": "alice@globex.test"}).status_code \
        == 404
    assert Domain.objects.get(pk=tenant.domain.pk).role_target == ""
