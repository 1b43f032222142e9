import pytest

from mailboxes.models import Alias
from tests.api.conftest import queries_for
from tests.factories import AliasFactory, DomainFactory

pytestmark = pytest.mark.django_db


def test_it_creates_an_alias(tenant):
    response = tenant.rw.post(
        "/aliases",
        {"address": "Sales@acme.test", "destinations": ["alice@acme.test", "Boss@Example.NET"]},
    )
    assert response.status_code == 201
    body = response.json()
    assert body["address"] == "sales@acme.test" and body["catch_all"] is False
    assert body["destinations"] == ["alice@acme.test", "boss@example.net"]
    assert body["live"] is False and body["revision"] > 0


def test_it_creates_a_catch_all_as_at_domain(tenant):
    response = tenant.rw.post(
        "/aliases", {"address": "@acme.test", "destinations": ["alice@acme.test"]}
    )
    assert response.status_code == 201
    assert response.json()["address"] == "@acme.test" and response.json()["catch_all"] is True
    assert tenant.rw.get("/aliases/@acme.test").json()["destinations"] == ["alice@acme.test"]
    assert tenant.rw.delete("/aliases/@acme.test").status_code == 204


def test_it_creates_an_inactive_alias_when_asked(tenant):
    response = tenant.rw.post(
        "/aliases",
        {"address": "old@acme.test", "destinations": ["alice@acme.test"], "active": False},
    )
    assert response.status_code == 201 and response.json()["active"] is False


def test_it_answers_200_for_the_same_alias_and_409_for_other_destinations(tenant):
    same = tenant.rw.post(
        "/aliases", {"address": "info@acme.test", "destinations": ["ALICE@acme.test"]}
    )
    assert same.status_code == 200 and same.json()["address"] == "info@acme.test"
    different = tenant.rw.post(
        "/aliases", {"address": "info@acme.test", "destinations": ["bob@acme.test"]}
    )
    assert different.status_code == 409 and different.json()["field"] == "destinations"
    assert Alias.objects.filter(local_part="info").count() == 1


def test_it_answers_409_when_a_mailbox_holds_the_address(tenant):
    response = tenant.rw.post(
        "/aliases", {"address": "alice@acme.test", "destinations": ["bob@example.net"]}
    )
    assert response.status_code == 409 and response.json()["code"] == "address_taken"


def test_it_changes_destinations_and_switches_an_alias_off(tenant):
    response = tenant.rw.patch(
        "/aliases/info@acme.test", {"destinations": ["bob@example.net"], "active": False}
    )
    assert response.status_code == 200
    assert response.json()["destinations"] == ["bob@example.net"]
    assert response.json()["active"] is False


def test_it_refuses_an_alias_forwarding_to_itself(tenant):
    response = tenant.rw.patch("/aliases/info@acme.test", {"destinations": ["info@acme.test"]})
    assert response.status_code == 422 and response.json()["field"] == "destinations"


def test_it_filters_by_domain_and_searches(tenant):
    second = DomainFactory(organisation=tenant.organisation, name="second.test")
    AliasFactory(domain=second, local_part="info")
    AliasFactory(domain=second, local_part="sales")

    def addresses(**params):
        return [a["address"] for a in tenant.rw.get("/aliases", params).json()["items"]]

    assert addresses() == ["info@acme.test", "info@second.test", "sales@second.test"]
    assert addresses(domain="second.test") == ["info@second.test", "sales@second.test"]
    assert addresses(search="info") == ["info@acme.test", "info@second.test"]


def test_it_lists_with_the_same_number_of_queries_at_any_page_size(tenant):
    few = queries_for(tenant.rw, "/aliases")
    second = DomainFactory(organisation=tenant.organisation)
    for n in range(10):
        AliasFactory(domain=second if n % 2 else tenant.domain)
    assert queries_for(tenant.rw, "/aliases") == few
