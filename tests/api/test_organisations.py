import pytest
from django.test import Client

from tests.api.conftest import ApiClient, queries_for
from tests.factories import OrganisationFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_it_lists_only_the_tokens_own_organisation(tenant, other):
    items = tenant.rw.get("/organisations").json()["items"]
    assert items == [{"slug": "acme", "name": "Acme"}]


def staff_client() -> ApiClient:
    staff = UserFactory(is_superuser=True)
    staff.save()  # the factory's password is set unsaved; the session hash needs it saved
    client = Client()
    client.force_login(staff)
    return ApiClient(client=client)


def test_it_lists_every_organisation_to_staff(tenant, other):
    slugs = [o["slug"] for o in staff_client().get("/organisations").json()["items"]]
    assert slugs == ["acme", "globex"]


def test_it_lists_with_the_same_number_of_queries_at_any_page_size(tenant):
    api = staff_client()
    few = queries_for(api, "/organisations")
    for _ in range(10):
        OrganisationFactory()
    assert queries_for(api, "/organisations") == few
