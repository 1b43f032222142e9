"""Finding 14: read-only access has no side effects, and a live DNS check is a write.

The attack: a read-only token or a viewer triggers `POST …/dns/check`, which records check
history, takes due DKIM rotation steps and mails the organisation's admins. Then a sweep: every
GET of every page (from the URL resolver) and of every API operation (from the OpenAPI schema)
leaves the database, the outbox and the task queue exactly as they were.
"""

import pytest
from allauth.account.models import EmailAddress
from django.apps import apps
from django.core import mail
from django.test import Client

from identity.models import DkimKey, DnsCheck, DnsCheckHistory, DomainPosture
from identity.services import dkim_rotate_start
from tenants.access import SYSTEM
from tenants.models import Invitation
from tenants.services import api_token_create
from tests.api.conftest import ApiClient
from tests.factories import MembershipFactory
from tests.identity.support import fragment_for
from tests.security.support import api_get_paths, page_urls

pytestmark = pytest.mark.django_db


def _member(of, role: str) -> Client:
    user = MembershipFactory(organisation=of, role=role).user
    user.save()
    # As every operator account has one (allauth's e-mail page would otherwise create it).
    EmailAddress.objects.create(user=user, email=user.email, verified=True, primary=True)
    client = Client()
    client.force_login(user)
    return client


def _rotation(of) -> list[tuple[str, str]]:
    return list(DkimKey.objects.filter(domain=of).order_by("pk").values_list("selector", "state"))


@pytest.fixture
def world(dns_world, domain):
    """good.test with a rotation under way, its records (the new key's too) published in a
    real DNS server: a check would find them all and switch signing to the new key."""
    dkim_rotate_start(actor=SYSTEM, domain=domain)
    MembershipFactory(organisation=domain.organisation, role="admin")  # someone to mail
    dns_world({"good.test": fragment_for(domain)})
    return domain


def _untouched(checked_domain, rotation) -> None:
    assert not DnsCheckHistory.objects.filter(domain=checked_domain).exists()
    assert not DnsCheck.objects.filter(domain=checked_domain).exists()
    assert _rotation(checked_domain) == rotation
    postures = DomainPosture.objects.filter(domain=checked_domain)
    checked = postures.values_list("last_checked_at", flat=True)
    assert set(checked) <= {None}
    assert mail.outbox == []


@pytest.mark.dns
def test_it_refuses_a_dns_check_from_a_read_only_token(world):
    _, raw = api_token_create(actor=SYSTEM, organisation=world.organisation, name="ro",
                              read_only=True)
    rotation = _rotation(world)

    response = ApiClient(raw).post("/domains/good.test/dns/check")

    assert response.status_code == 403 and response.json()["code"] == "forbidden"
    _untouched(world, rotation)


@pytest.mark.dns
def test_it_refuses_a_dns_check_from_a_viewer_in_the_api_and_the_pages(
    world, django_capture_on_commit_callbacks
):
    viewer = _member(world.organisation, "viewer")
    rotation = _rotation(world)
    with django_capture_on_commit_callbacks() as queued:
        api_answer = ApiClient(client=viewer).post("/domains/good.test/dns/check")
        page_answer = viewer.post("/mail-admin/acme/domains/good.test/dns/check/")
    assert api_answer.status_code == 403 and page_answer.status_code == 403
    assert queued == []  # no check task enqueued
    _untouched(world, rotation)
    page = viewer.get("/mail-admin/acme/domains/good.test/dns/")
    assert page.status_code == 200 and b"Check now" not in page.content


@pytest.mark.dns
def test_it_still_lets_an_admin_check_now(world):
    _, raw = api_token_create(actor=SYSTEM, organisation=world.organisation, name="rw")
    response = ApiClient(raw).post("/domains/good.test/dns/check")
    assert response.status_code == 200
    assert DnsCheckHistory.objects.filter(domain=world).exists()


# --- every GET is side-effect free --------------------------------------------------------------


def _state() -> dict:
    """Every row of every model, minus what a read may legitimately touch: sessions, and the
    "last used" stamps of the credential that made the request."""
    skip_models = {"sessions.session"}
    skip_fields = {"last_used_at", "last_login"}
    state = {}
    for model in apps.get_models():
        if model._meta.label_lower in skip_models:
            continue
        rows = model.objects.order_by("pk").values()
        state[model._meta.label_lower] = [
            {k: v for k, v in row.items() if k not in skip_fields} for row in rows
        ]
    return state


def test_it_changes_nothing_on_any_get(
    everything, organisation, django_capture_on_commit_callbacks
):
    viewer = _member(organisation, "viewer")
    holder = Client()
    signed_in = holder.post("/mailbox/login/", {"address": everything.values["address"],
                                                "password": everything.mailbox_password})
    assert signed_in.status_code == 302
    pages = page_urls(everything)
    api_paths = api_get_paths(everything)
    assert len(pages) > 50 and len(api_paths) > 10
    unresolved = [url for url in pages if not url.startswith("/")]
    assert unresolved == [], f"add placeholders for {unresolved}"
    before = _state()
    with django_capture_on_commit_callbacks() as queued:
        for url in pages:
            for client in (viewer, holder, Client()):
                assert client.get(url).status_code != 500, url
        for path in api_paths:
            assert ApiClient(everything.read_only_token).get(path).status_code != 500, path
            assert ApiClient(client=viewer).get(path).status_code != 500, path
    assert queued == [], "a GET enqueued work"
    assert mail.outbox == []
    after = _state()
    changed = [label for label in before if before[label] != after[label]]
    assert changed == [], f"a GET changed {changed}"
    assert Invitation.objects.get(email="new@corp.test").accepted_at is None
