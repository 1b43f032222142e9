"""Limits the mail service's staff set (issue 10, "Also"): an organisation cannot raise its own
mailbox limit, and no path (restore included) takes a domain past it."""

import pytest
from django.test import Client

from mailboxes import services
from mailboxes.models import Domain, Mailbox
from tenants.access import SYSTEM
from tenants.models import AuditEvent
from tests.factories import MembershipFactory, OrganisationFactory, UserFactory
from tests.identity.support import api_for

pytestmark = pytest.mark.django_db
PASSWORD = "limits password 1"


@pytest.fixture
def limited():
    """A domain staff sold with room for one mailbox."""
    organisation = OrganisationFactory(slug="tight", name="Tight")
    domain = services.domain_create(actor=SYSTEM, organisation=organisation, name="tight.test",
                                    max_mailboxes=1)
    return domain


def test_it_refuses_an_organisation_admin_raising_its_mailbox_limit(limited):
    api = api_for(limited.organisation)
    response = api.send("PATCH", "/domains/tight.test", {"max_mailboxes": 1000})
    assert response.status_code == 403, response.content
    assert response.json()["code"] == "limit_set_by_staff"
    assert "staff" in response.json()["detail"]
    removed = api.send("PATCH", "/domains/tight.test", {"max_mailboxes": None})
    assert removed.status_code == 403
    assert Domain.objects.get(pk=limited.pk).max_mailboxes == 1
    assert not AuditEvent.objects.filter(action="domain.update").exists()


def test_it_refuses_an_organisation_admin_setting_a_limit_at_creation(limited):
    api = api_for(limited.organisation)
    response = api.send("POST", "/domains", {"name": "more.test", "max_mailboxes": 10**6})
    assert response.status_code == 403 and response.json()["code"] == "limit_set_by_staff"
    assert not Domain.objects.filter(name="more.test").exists()


def test_it_refuses_the_limit_change_on_the_settings_page_too(limited):
    owner = MembershipFactory(organisation=limited.organisation, role="owner").user
    client = Client()
    client.force_login(owner)
    response = client.post(
        "/mail-admin/tight/domains/tight.test/edit/",
        {"status": "active", "max_mailboxes": "1000", "default_quota_mb": "2048"},
    )
    assert response.status_code == 403
    assert b"set by the mail service" in response.content
    assert Domain.objects.get(pk=limited.pk).max_mailboxes == 1


def test_it_lets_staff_raise_the_limit_and_audits_it(limited):
    staff_user = UserFactory(is_superuser=True, is_staff=True)
    client = Client()
    client.force_login(staff_user)
    response = client.patch(
        "/api/v1/domains/tight.test", {"max_mailboxes": 5}, content_type="application/json"
    )
    assert response.status_code == 200 and response.json()["max_mailboxes"] == 5
    event = AuditEvent.objects.get(action="domain.update", target="tight.test")
    assert event.actor_user == staff_user
    assert (event.before["max_mailboxes"], event.after["max_mailboxes"]) == (1, 5)


def test_it_refuses_a_restore_beyond_the_limit(limited):
    api = api_for(limited.organisation)
    assert api.send("POST", "/mailboxes", {"address": "a@tight.test",
                                           "password": PASSWORD}).status_code == 201
    assert api.send("DELETE", "/mailboxes/a@tight.test").status_code == 200
    assert api.send("POST", "/mailboxes", {"address": "b@tight.test",
                                           "password": PASSWORD}).status_code == 201
    response = api.send("POST", "/mailboxes/a@tight.test/restore")
    assert response.status_code == 409, response.content
    body = response.json()
    assert body["code"] == "limit_reached"
    assert "limit of 1 mailboxes" in body["detail"] and "restore a@tight.test" in body["detail"]
    assert Mailbox.objects.filter(domain=limited, deleted_at=None).count() == 1


def test_it_renames_at_the_limit_without_passing_it(limited):
    api = api_for(limited.organisation)
    api.send("POST", "/mailboxes", {"address": "a@tight.test", "password": PASSWORD})
    renamed = api.send("PATCH", "/mailboxes/a@tight.test", {"address": "z@tight.test"})
    assert renamed.status_code == 200
    moved = api.send("PATCH", "/mailboxes/z@tight.test", {"address": "z@other.test"})
    assert moved.status_code == 422  # no moving across domains (and so around a limit)
    assert Mailbox.objects.filter(domain=limited, deleted_at=None).count() == 1
