import json
import socket
from contextlib import contextmanager
from dataclasses import dataclass

import pytest
from django.db import connection, connections
from django.db.models import F
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from mailboxes.models import Alias, Domain, Mailbox
from mailhost.redis import get_redis
from nodes.models import MailNode
from tenants.access import SYSTEM
from tenants.models import ApiToken, Organisation
from tenants.services import api_token_create
from tests.factories import (
    AliasFactory,
    DomainFactory,
    MailboxFactory,
    MembershipFactory,
    OrganisationFactory,
)


class ApiClient:
    """Django's test client speaking JSON to /api/v1/ with a bearer token (or none)."""

    def __init__(self, token: str | None = None, client: Client | None = None):
        self.token = token
        self.client = client or Client()

    def headers(self, extra: dict | None = None) -> dict:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        return headers | (extra or {})

    def get(self, path: str, params: dict | None = None, headers: dict | None = None):
        return self.client.get(f"/api/v1{path}", params or {}, headers=self.headers(headers))

    def send(self, method: str, path: str, body=None, headers: dict | None = None):
        data = json.dumps(body) if body is not None else ""
        return self.client.generic(
            method, f"/api/v1{path}", data, content_type="application/json",
            headers=self.headers(headers),
        )

    def post(self, path: str, body=None, headers: dict | None = None):
        return self.send("POST", path, body, headers)

    def patch(self, path: str, body=None, headers: dict | None = None):
        return self.send("PATCH", path, body, headers)

    def delete(self, path: str, headers: dict | None = None):
        return self.send("DELETE", path, None, headers)


def make_token(organisation, *, read_only: bool = False, name: str = "test") -> str:
    _, raw = api_token_create(
        actor=SYSTEM, organisation=organisation, name=name, read_only=read_only
    )
    return raw


def person_for(organisation, role: str = "owner") -> ApiClient:
    """A signed-in member's browser session on the API (people, not tokens, manage tokens)."""
    user = MembershipFactory(organisation=organisation, role=role).user
    user.save()  # the factory sets the password without saving it
    client = Client()
    client.force_login(user)
    return ApiClient(client=client)


@dataclass
class Tenant:
    """An organisation with a domain holding a mailbox, a deleted mailbox and an alias; an empty
    second domain; a spare token; and clients with a read-write and a read-only token."""

    organisation: Organisation
    domain: Domain
    empty_domain: Domain
    mailbox: Mailbox
    deleted_mailbox: Mailbox
    alias: Alias
    spare_token: ApiToken
    rw: ApiClient
    ro: ApiClient


def make_tenant(name: str) -> Tenant:
    organisation = OrganisationFactory(slug=name, name=name.title())
    domain = DomainFactory(organisation=organisation, name=f"{name}.test")
    spare_token, _ = api_token_create(actor=SYSTEM, organisation=organisation, name="spare")
    return Tenant(
        organisation=organisation,
        domain=domain,
        empty_domain=DomainFactory(organisation=organisation, name=f"empty.{name}.test"),
        mailbox=MailboxFactory(domain=domain, local_part="alice", display_name="Alice"),
        deleted_mailbox=MailboxFactory(domain=domain, local_part="gone", deleted_at=timezone.now()),
        alias=AliasFactory(domain=domain, local_part="info", destinations=[f"alice@{name}.test"]),
        spare_token=spare_token,
        rw=ApiClient(make_token(organisation, name="rw")),
        ro=ApiClient(make_token(organisation, read_only=True, name="ro")),
    )


@pytest.fixture
def tenant(db) -> Tenant:
    return make_tenant("acme")


@pytest.fixture
def other(db) -> Tenant:
    return make_tenant("globex")


@pytest.fixture
def anonymous() -> ApiClient:
    return ApiClient()


@pytest.fixture(autouse=True)
def _fresh_rate_limits():
    """Rate-limit counters are keyed by token id; ids repeat across test databases."""
    redis = get_redis()
    keys = list(redis.scan_iter("mailhost:api-rate:*"))
    if keys:
        redis.delete(*keys)


def apply_all_nodes() -> None:
    """What the reconciler records after an apply: every node caught up, just now."""
    MailNode.objects.update(applied_revision=F("desired_revision"), applied_at=timezone.now())


def queries_for(client: ApiClient, path: str, params: dict | None = None) -> int:
    """How many SQL queries one GET costs (after a warm-up, which may record the token's use)."""
    assert client.get(path, params).status_code == 200
    with CaptureQueriesContext(connection) as captured:
        response = client.get(path, params)
    assert response.status_code == 200, response.content
    return len(captured.captured_queries)


@contextmanager
def database_down():
    """Point the connection at a port nothing listens on: every query fails as if Postgres had
    gone away (connection refused), then put it back."""
    conn = connections["default"]
    conn.close()
    saved = dict(conn.settings_dict)
    with socket.socket() as probe:  # a port that was free a moment ago
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    conn.settings_dict.update(HOST="127.0.0.1", PORT=str(port))
    try:
        yield
    finally:
        conn.close()
        conn.settings_dict.clear()
        conn.settings_dict.update(saved)
