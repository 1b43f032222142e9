import pytest
from django.test import Client

from identity.models import DkimKey
from mailboxes.models import Domain
from tenants.models import AuditEvent
from tests.api.conftest import ApiClient, apply_all_nodes, queries_for
from tests.factories import DomainFactory, OrganisationFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_it_hosts_a_domain_with_a_signing_key(tenant):
    response = tenant.rw.post("/domains", {"name": "Bücher.example", "default_quota_mb": 512})
    assert response.status_code == 201
    body = response.json()
    assert body["name"] == "xn--bcher-kva.example" and body["display_name"] == "bücher.example"
    assert (body["organisation"], body["max_mailboxes"], body["default_quota_mb"]) == (
        "acme", None, 512
    )
    # A special-use name (RFC 2606) needs no DNS proof: verified at once, no token to publish.
    assert (body["verified"], body["verification_method"]) == (True, "special-use")
    assert body["verification"] is None
    assert body["live"] is False and body["revision"] > 0
    assert DkimKey.objects.filter(domain__name="xn--bcher-kva.example", state="active").exists()
    apply_all_nodes()
    assert tenant.rw.get("/domains/bücher.example").json()["live"] is True


def test_it_answers_200_for_the_same_domain_and_409_for_different_attributes(tenant):
    created = tenant.rw.post("/domains", {"name": "new.test", "default_quota_mb": 500})
    assert created.status_code == 201
    same = tenant.rw.post("/domains", {"name": "NEW.test", "default_quota_mb": 500})
    assert same.status_code == 200 and same.json()["name"] == "new.test"
    assert tenant.rw.post("/domains", {"name": "new.test"}).status_code == 200
    different = tenant.rw.post("/domains", {"name": "new.test", "default_quota_mb": 600})
    assert different.status_code == 409 and different.json()["field"] == "default_quota_mb"
    assert Domain.objects.filter(name="new.test").count() == 1


def test_it_gives_a_name_another_organisation_hosts_a_claim_that_never_goes_live(tenant, other):
    response = tenant.rw.post("/domains", {"name": "globex.test"})
    assert response.status_code == 201
    body = response.json()
    assert (body["organisation"], body["verified"], body["live"]) == ("acme", False, False)
    apply_all_nodes()
    assert tenant.rw.get("/domains/globex.test").json()["live"] is False
    assert other.rw.get("/domains/globex.test").json()["live"] is True


def staff_api() -> ApiClient:
    client = Client()
    client.force_login(UserFactory(is_superuser=True, is_staff=True))
    return ApiClient(client=client)


def test_it_changes_status_and_quota_and_leaves_the_limit_to_staff(tenant):
    response = tenant.rw.patch("/domains/acme.test", {"status": "disabled", "default_quota_mb": 10})
    assert response.status_code == 200
    assert (response.json()["status"], response.json()["default_quota_mb"]) == ("disabled", 10)
    staff = staff_api()
    limited = staff.patch("/domains/acme.test", {"max_mailboxes": 3})
    assert limited.status_code == 200 and limited.json()["max_mailboxes"] == 3
    unlimited = staff.patch("/domains/acme.test", {"max_mailboxes": None})
    assert unlimited.json()["max_mailboxes"] is None
    assert unlimited.json()["default_quota_mb"] == 10  # untouched when not sent
    event = AuditEvent.objects.filter(action="domain.update").latest("id")
    assert event.actor_user.is_superuser and event.after["max_mailboxes"] is None


def test_it_refuses_to_delete_a_domain_that_still_has_mailboxes(tenant):
    response = tenant.rw.delete("/domains/acme.test")
    assert response.status_code == 409 and response.json()["code"] == "domain_not_empty"
    assert tenant.rw.delete("/domains/empty.acme.test").status_code == 204
    assert tenant.rw.get("/domains/empty.acme.test").status_code == 404


def test_it_filters_by_status_and_searches_by_name(tenant):
    DomainFactory(organisation=tenant.organisation, name="shop.example", status="disabled")

    def names(**params):
        return [d["name"] for d in tenant.rw.get("/domains", params).json()["items"]]

    assert names() == ["acme.test", "empty.acme.test", "shop.example"]
    assert names(status="disabled") == ["shop.example"]
    assert names(search="acme") == ["acme.test", "empty.acme.test"]


def test_it_lists_with_the_same_number_of_queries_at_any_page_size(tenant):
    few = queries_for(tenant.rw, "/domains")
    second_org = OrganisationFactory()
    for _ in range(10):
        DomainFactory(organisation=tenant.organisation)
        DomainFactory(organisation=second_org)
    assert queries_for(tenant.rw, "/domains") == few
