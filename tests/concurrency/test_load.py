"""Ordinary load on whichever database this run uses: the embedded SQLite default or PostgreSQL.

`make test` runs this module twice: once on PostgreSQL and once on a SQLite file database, as
`make up` runs it (marker `embedded`). Real HTTP to the portal as `make up` runs it (gunicorn,
two worker processes), from 50 client threads, while a real Celery worker applies every
change to the real mail stack. No write may answer 500
or 503, and every write must be committed exactly once.
"""

import json
import secrets
import threading
import urllib.error
import urllib.parse
import urllib.request

import pytest
from django.db import connection
from django.test import Client

from identity.models import DkimKey
from mailboxes import services
from mailboxes.models import Domain, Mailbox
from mailhost.passwords import verify_password
from nodes.models import MailNode
from tenants.access import SYSTEM
from tenants.models import AuditEvent
from tests.api.conftest import make_token
from tests.factories import MembershipFactory, OrganisationFactory
from tests.stack import imap_login, unique_domain, wait_for

pytestmark = [pytest.mark.stack, pytest.mark.embedded, pytest.mark.django_db(transaction=True)]

CLIENTS = 50


class Http:
    """A small HTTP client for one thread: a bearer token or session cookies."""

    def __init__(self, base: str, *, token: str | None = None, cookies: dict | None = None):
        self.base, self.headers = base, {}
        if token:
            self.headers["Authorization"] = f"Bearer {token}"
        if cookies:
            self.headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())

    def request(self, method: str, path: str, body: bytes | None = None, headers=None):
        request = urllib.request.Request(
            self.base + path, data=body, method=method, headers=self.headers | (headers or {})
        )
        try:
            with urllib.request.urlopen(request, timeout=120) as response:  # noqa: S310
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def post_json(self, path: str, payload: dict):
        status, body = self.request(
            "POST", path, json.dumps(payload).encode(), {"Content-Type": "application/json"}
        )
        return status, json.loads(body) if body.startswith(b"{") else body

    def post_form(self, path: str, fields: dict):
        data = urllib.parse.urlencode(fields).encode()
        return self.request(
            "POST", path, data, {"Content-Type": "application/x-www-form-urlencoded"}
        )


def run_concurrently(count: int, work) -> list:
    """`work(i)` in `count` threads released together; each result, or the exception raised."""
    start = threading.Barrier(count)
    results: list = [None] * count

    def run(i: int) -> None:
        try:
            start.wait(timeout=30)
            results[i] = work(i)
        except Exception as exc:  # reported by the assertions, with the others
            results[i] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    return results


def applied(domain: Domain) -> bool:
    node = MailNode.objects.get(pk=domain.node_id)
    return node.applied_revision >= node.desired_revision


@pytest.fixture
def org(reconcile_worker):
    return OrganisationFactory(slug=f"load{secrets.token_hex(3)}")


@pytest.fixture
def domain(org):
    return services.domain_create(actor=SYSTEM, organisation=org, name=unique_domain("load"))


def test_it_commits_50_concurrent_api_creates_once_each(portal, org, domain, mail_stack):
    token = make_token(org)

    def create(i: int):
        return Http(portal.url, token=token).post_json(
            "/api/v1/mailboxes", {"address": f"user{i}@{domain.name}"}
        )

    results = run_concurrently(CLIENTS, create)

    assert [r[0] if isinstance(r, tuple) else r for r in results] == [201] * CLIENTS
    mailboxes = {m.local_part: m for m in Mailbox.objects.filter(domain=domain)}
    assert sorted(mailboxes) == sorted(f"user{i}" for i in range(CLIENTS))
    for i, (_, body) in enumerate(results):
        assert verify_password(body["password"], mailboxes[f"user{i}"].password_hash)
    creates = AuditEvent.objects.filter(action="mailbox.create", target__endswith=domain.name)
    assert creates.count() == CLIENTS
    # And the worker, applying meanwhile, made every one of them live.
    wait_for(lambda: applied(domain), timeout=60)
    _, first = results[0]
    assert imap_login(mail_stack, first["address"], first["password"])


def test_it_takes_page_writes_while_the_worker_applies(portal, org, domain):
    operator = MembershipFactory(organisation=org, role="admin").user
    operator.save()
    browser = Client()
    browser.force_login(operator)
    csrf = secrets.token_hex(16)  # an unmasked 32-character secret is a valid token
    cookies = {"sessionid": browser.cookies["sessionid"].value, "csrftoken": csrf}
    token = make_token(org)
    path = f"/mail-admin/{org.slug}/mailboxes/new/"

    def write(i: int):
        if i % 2:  # API writers keep the worker busy applying while the forms are posted
            status, _ = Http(portal.url, token=token).post_json(
                "/api/v1/mailboxes", {"address": f"api{i}@{domain.name}"}
            )
            return status
        status, _ = Http(portal.url, cookies=cookies).post_form(path, {
            "csrfmiddlewaretoken": csrf, "local_part": f"page{i}", "domain": domain.name,
            "display_name": f"Page {i}", "quota_mb": "", "password": "",
        })
        return status

    results = run_concurrently(30, write)

    pages = results[0::2]
    assert pages == [200] * len(pages)  # the page that shows the generated password once
    assert results[1::2] == [201] * len(results[1::2])
    names = set(Mailbox.objects.filter(domain=domain).values_list("local_part", flat=True))
    assert names == {f"page{i}" for i in range(0, 30, 2)} | {f"api{i}" for i in range(1, 30, 2)}
    assert AuditEvent.objects.filter(
        action="mailbox.create", target__endswith=domain.name
    ).count() == 30
    wait_for(lambda: applied(domain), timeout=60)


def test_it_rotates_dkim_right_after_creating_the_domain(portal, org):
    token = make_token(org)
    names = [unique_domain("rot") for _ in range(8)]

    def create_then_rotate(i: int):
        http = Http(portal.url, token=token)
        created, _ = http.post_json("/api/v1/domains", {"name": names[i]})
        rotated, body = http.post_json(f"/api/v1/domains/{names[i]}/dkim/rotate", {})
        return created, rotated, body

    results = run_concurrently(len(names), create_then_rotate)

    assert [r[:2] if isinstance(r, tuple) else r for r in results] == [(201, 201)] * len(names)
    for name in names:
        keys = DkimKey.objects.filter(domain__name=name)
        assert keys.count() == 2  # the first key and the next one, exactly once each
    assert AuditEvent.objects.filter(action="domain.create", target__in=names).count() == 8
    domain = Domain.objects.get(name=names[0])
    wait_for(lambda: applied(domain), timeout=60)
