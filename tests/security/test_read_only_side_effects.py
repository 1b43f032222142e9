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
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from identity.models import DkimKey, DnsCheck, DnsCheckHistory, DomainPosture
from identity.services import dkim_rotate_start
from mailboxes.models import MailboxImport
from mailhost.api import api
from mailhost.passwords import hash_password
from tenants.access import SYSTEM, Actor
from tenants.models import Invitation, Membership
from tenants.services import api_token_create, invitation_create
from tests.api.conftest import ApiClient
from tests.factories import AppPasswordFactory, MembershipFactory
from tests.identity.support import fragment_for

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


def _patterns(patterns=None, namespace=None):
    """(namespaced name, pattern) of every named URL, walking includes."""
    for entry in patterns if patterns is not None else get_resolver().url_patterns:
        if isinstance(entry, URLResolver):
            inner = entry.namespace
            if namespace and inner:
                inner = f"{namespace}:{inner}"
            yield from _patterns(entry.url_patterns, inner or namespace)
        elif isinstance(entry, URLPattern) and entry.name:
            yield (f"{namespace}:{entry.name}" if namespace else entry.name), entry.pattern


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


@pytest.fixture
def everything(domain, organisation):
    """One of each kind of object, so every URL has something real to name."""
    from mailboxes.services import alias_create, mailbox_create

    mailbox, _ = mailbox_create(actor=SYSTEM, domain=domain, local_part="anna",
                                password="anna-password-1")
    alias = alias_create(actor=SYSTEM, domain=domain, local_part="info",
                         destinations=["anna@good.test"])
    owner = MembershipFactory(organisation=organisation, role="owner")
    invitation, raw_invitation = invitation_create(
        actor=Actor(user=owner.user), organisation=organisation, email="new@corp.test",
        role="viewer",
    )
    token, raw_ro = api_token_create(actor=SYSTEM, organisation=organisation, name="ro",
                                     read_only=True)
    job = MailboxImport.objects.create(organisation=organisation, created_by=owner.user,
                                       filename="x.csv", total=0, source_encrypted="")
    app_password = AppPasswordFactory(mailbox=mailbox, password_hash=hash_password("x" * 20))
    key = DkimKey.objects.filter(domain=domain).first()
    values = {
        "org": organisation.slug, "name": domain.name, "address": mailbox.address,
        "token": raw_invitation, "selector": key.selector, "path": "x", "rest": "x",
        "key": "x", "uidb36": "x", "uidb64": "x", "app_label": "tenants",
        "pk": Membership.objects.get(user=owner.user).pk,
    }
    by_name = {
        "mailboxes:alias": {"address": alias.address},
        "mailboxes:alias_delete": {"address": alias.address},
        "tenants:invitation_revoke": {"pk": invitation.pk},
        "tenants:token_revoke": {"pk": token.pk},
        "mailboxes:import": {"pk": job.pk},
        "mailboxes:import_passwords": {"pk": job.pk},
        "mailboxes:app_password_revoke": {"pk": app_password.pk},
        "mailbox:app_password_revoke": {"pk": app_password.pk},
    }
    return values, by_name, raw_ro


def _page_urls(values, by_name) -> list[str]:
    urls = []
    for name, pattern in _patterns():
        if name.startswith("api:"):
            continue  # the API is swept through its schema, with its methods
        params = list(pattern.converters) or list(pattern.regex.groupindex)
        kwargs = {k: (by_name.get(name) or {}).get(k, values.get(k, "x")) for k in params}
        try:
            urls.append(reverse(name, kwargs=kwargs))
        except Exception:  # a pattern whose converters our placeholders do not satisfy
            urls.append(name)
    return urls


def _api_get_paths(values, by_name) -> list[str]:
    paths = []
    for path, operations in api.get_openapi_schema()["paths"].items():
        if "get" in operations:
            paths.append(path.format(token_id=by_name["tenants:token_revoke"]["pk"], **values))
    return paths


def test_it_changes_nothing_on_any_get(
    everything, organisation, django_capture_on_commit_callbacks
):
    values, by_name, raw_ro = everything
    viewer = _member(organisation, "viewer")
    holder = Client()
    signed_in = holder.post("/mailbox/login/", {"address": values["address"],
                                                "password": "anna-password-1"})
    assert signed_in.status_code == 302
    pages = _page_urls(values, by_name)
    api_paths = _api_get_paths(values, by_name)
    assert len(pages) > 50 and len(api_paths) > 10
    unresolved = [url for url in pages if not url.startswith("/")]
    assert unresolved == [], f"add placeholders for {unresolved}"
    before = _state()
    with django_capture_on_commit_callbacks() as queued:
        for url in pages:
            for client in (viewer, holder, Client()):
                assert client.get(url).status_code != 500, url
        for path in api_paths:
            assert ApiClient(raw_ro).get(path.removeprefix("/api/v1")).status_code != 500, path
            assert ApiClient(client=viewer).get(path.removeprefix("/api/v1")).status_code != 500
    assert queued == [], "a GET enqueued work"
    assert mail.outbox == []
    after = _state()
    changed = [label for label in before if before[label] != after[label]]
    assert changed == [], f"a GET changed {changed}"
    assert Invitation.objects.get(email="new@corp.test").accepted_at is None
