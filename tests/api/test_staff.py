"""The staff API: a consultancy's automation onboards a client (organisation + first admin),
lists its clients, suspends and unsuspends one, with an install-wide staff token."""

import pytest
from django.core import mail
from django.test import Client

from nodes.models import NodeChange
from tenants.access import SYSTEM
from tenants.models import AuditEvent, Invitation, Organisation
from tenants.services import staff_token_create
from tests.api.conftest import ApiClient, queries_for
from tests.factories import DomainFactory, OrganisationFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_token():
    token, raw = staff_token_create(actor=SYSTEM, name="onboarding robot")
    return token, ApiClient(raw)


@pytest.fixture
def staff_api(staff_token):
    return staff_token[1]


def test_it_onboards_a_client_lists_suspends_and_unsuspends_it(
    staff_token, django_capture_on_commit_callbacks
):
    token, api = staff_token
    with django_capture_on_commit_callbacks(execute=True):
        created = api.post("/staff/organisations", {
            "slug": "initech", "name": "Initech Ltd", "admin_email": "Peter@Initech.test",
        }, headers={"Idempotency-Key": "onboard-initech"})

    assert created.status_code == 201, created.content
    body = created.json()
    assert (body["slug"], body["name"], body["suspended"], body["suspended_at"]) == (
        "initech", "Initech Ltd", False, None
    )
    assert body["invitation"]["email"] == "peter@initech.test"
    assert body["invitation"]["role"] == "owner"
    assert "/mail-admin/invitations/" in body["invitation"]["accept_url"]
    assert [m.to for m in mail.outbox] == [["peter@initech.test"]]
    assert body["invitation"]["accept_url"] in mail.outbox[0].body
    # A retry of the same request replays the answer instead of failing on the slug.
    again = api.post("/staff/organisations", {
        "slug": "initech", "name": "Initech Ltd", "admin_email": "Peter@Initech.test",
    }, headers={"Idempotency-Key": "onboard-initech"})
    assert again.status_code == 201 and again.json() == body

    listed = api.get("/staff/organisations").json()
    assert [o["slug"] for o in listed["items"]] == ["initech"]

    suspended = api.post("/staff/organisations/initech/suspend")
    assert suspended.status_code == 200 and suspended.json()["suspended"] is True
    assert api.get("/staff/organisations", {"suspended": "true"}).json()["count"] == 1
    assert api.get("/staff/organisations", {"suspended": "false"}).json()["count"] == 0
    assert api.post("/staff/organisations/initech/suspend").json()["suspended"] is True
    unsuspended = api.post("/staff/organisations/initech/unsuspend")
    assert unsuspended.status_code == 200 and unsuspended.json()["suspended_at"] is None
    assert api.get("/staff/organisations/initech").json()["suspended"] is False

    organisation = Organisation.objects.get(slug="initech")
    events = AuditEvent.objects.filter(organisation=organisation).order_by("id")
    assert [(e.action, e.actor_token_id) for e in events] == [
        ("organisation.create", token.pk),
        ("invitation.create", token.pk),
        ("organisation.suspend", token.pk),
        ("organisation.unsuspend", token.pk),
    ]
    assert events[0].actor_label.startswith("staff token onboarding robot")


def test_it_invites_another_admin_to_an_existing_client(staff_api, tenant):
    response = staff_api.post("/staff/organisations/acme/invitations",
                              {"email": "new.admin@acme.test", "role": "admin"})
    assert response.status_code == 201
    assert Invitation.objects.get(organisation=tenant.organisation).role == "admin"


def test_it_suspends_through_the_reconcile_of_every_domain(staff_api, tenant):
    before = set(NodeChange.objects.values_list("kind", "object_id"))
    staff_api.post("/staff/organisations/acme/suspend")
    changed = set(NodeChange.objects.values_list("kind", "object_id")) - before
    assert changed == {("domain", tenant.domain.pk), ("domain", tenant.empty_domain.pk)}


@pytest.mark.parametrize(
    "body, status, field",
    [
        ({"slug": "Bad Slug", "name": "X"}, 422, "slug"),
        ({"slug": "invitations", "name": "X"}, 422, "slug"),
        ({"slug": "ok", "name": ""}, 422, "name"),
        ({"slug": "ok", "name": "X", "admin_email": "nobody"}, 422, "admin_email"),
        ({"slug": "ok", "name": "X", "admin_email": "a@b.test", "admin_role": "viewer"}, 422,
         "admin_role"),
        ({"slug": "acme", "name": "X"}, 409, "slug"),
    ],
)
def test_it_refuses_bad_input_naming_the_field_and_creates_nothing(
    staff_api, tenant, body, status, field
):
    response = staff_api.post("/staff/organisations", body)
    assert response.status_code == status, response.content
    assert response.json()["field"] == field and response.json()["detail"]
    assert list(Organisation.objects.values_list("slug", flat=True)) == ["acme"]
    assert not Invitation.objects.exists()


def test_it_answers_404_for_an_unknown_organisation(staff_api):
    for method, path in (("GET", "/staff/organisations/nope"),
                         ("POST", "/staff/organisations/nope/suspend")):
        response = staff_api.send(method, path)
        assert response.status_code == 404 and response.json()["code"] == "not_found"


def test_it_serves_a_signed_in_staff_user_too(tenant):
    staff = UserFactory(is_superuser=True)
    staff.save()
    client = Client()
    client.force_login(staff)
    assert ApiClient(client=client).get("/staff/organisations").json()["count"] == 1


def test_it_lists_with_the_same_number_of_queries_at_any_size(staff_api):
    OrganisationFactory()
    few = queries_for(staff_api, "/staff/organisations")
    for _ in range(10):
        DomainFactory(organisation=OrganisationFactory())
    assert queries_for(staff_api, "/staff/organisations") == few


def test_it_documents_the_staff_endpoints(anonymous):
    paths = anonymous.get("/openapi.json").json()["paths"]
    staff = {p for p in paths if p.startswith("/api/v1/staff/")}
    assert staff == {
        "/api/v1/staff/organisations",
        "/api/v1/staff/organisations/{slug}",
        "/api/v1/staff/organisations/{slug}/suspend",
        "/api/v1/staff/organisations/{slug}/unsuspend",
        "/api/v1/staff/organisations/{slug}/invitations",
        "/api/v1/staff/organisations/{slug}/sending-quota",
        "/api/v1/staff/organisations/{slug}/encryption",
        "/api/v1/staff/queue",
        "/api/v1/staff/queue/{queue_id}/{action}",
        "/api/v1/staff/tls-policies",
        "/api/v1/staff/tls-policies/{domain}",
        "/api/v1/staff/tls-failures",
        "/api/v1/staff/domains/{name}/move",
    }
