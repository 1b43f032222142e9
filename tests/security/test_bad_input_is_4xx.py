"""Finding 13: hostile input that used to answer 500 gets a 4xx with a message, and changes nothing.

Written as the attacker acts: values a client can send (an extreme time-zone offset, a multipart
body without its boundary, a publishing target that is not a DNS server), each asserting the
answer and that no row was written.
"""

import base64
import secrets
import socket
import threading
from contextlib import contextmanager

import pytest

from identity.services import posture_update
from mailhost.api import api
from tenants.access import SYSTEM
from tenants.models import ApiToken, AuditEvent, IdempotencyRecord
from tests.api.conftest import make_tenant, person_for
from tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db

# Aware date-times Python parses whose UTC instant lies outside the years 1–9999.
OUT_OF_RANGE = ["9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+23:59"]
# Offsets PostgreSQL refuses (beyond ±15:59) on instants that are fine in UTC.
ODD_OFFSETS = ["2024-06-01T12:00:00-20:00", "9999-12-31T08:00:00+23:59"]
EXTREMES = OUT_OF_RANGE + ODD_OFFSETS


@pytest.fixture
def tenant(db):
    return make_tenant("acme")


def _error(response, status: int = 422) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert body["code"] and body["detail"]
    return body


@pytest.mark.parametrize("value", OUT_OF_RANGE)
def test_it_answers_422_naming_the_field_for_an_extreme_audit_until(tenant, value):
    body = _error(tenant.rw.get("/audit", {"until": value}))
    assert body["field"] == "until"
    assert "out of range" in body["detail"]


@pytest.mark.parametrize("value", ODD_OFFSETS)
def test_it_compares_an_odd_offset_in_utc(tenant, value):
    response = tenant.rw.get("/audit", {"since": value})
    assert response.status_code == 200, response.content


def test_it_still_filters_the_audit_log_with_an_ordinary_offset(tenant):
    api_token_count = ApiToken.objects.count()
    response = tenant.rw.get("/audit", {"until": "2000-01-01T00:00:00+05:30"})
    assert response.status_code == 200 and response.json()["count"] == 0
    response = tenant.rw.get("/audit", {"since": "2000-01-01T00:00:00-08:00"})
    assert response.status_code == 200 and response.json()["count"] > 0
    assert ApiToken.objects.count() == api_token_count


@pytest.mark.parametrize("value", OUT_OF_RANGE)
def test_it_refuses_an_extreme_token_expiry_without_creating_a_token(tenant, value):
    before = ApiToken.objects.count()
    person = person_for(tenant.organisation)  # people create tokens
    body = _error(person.post("/tokens", {"name": "evil", "expires_at": value}))
    assert body["field"] == "expires_at"
    assert ApiToken.objects.count() == before
    assert not AuditEvent.objects.filter(action="api_token.create", target__startswith="evil")


def test_it_stores_a_token_expiry_with_an_odd_offset_in_utc(tenant):
    response = person_for(tenant.organisation).post(
        "/tokens", {"name": "far", "expires_at": ODD_OFFSETS[1]}
    )
    assert response.status_code == 201, response.content
    token = ApiToken.objects.get(name="far")
    assert token.expires_at.isoformat() == "9999-12-30T08:01:00+00:00"


def _openapi_datetime_queries() -> list[tuple[str, str]]:
    """(path, parameter) for every date-time query parameter of every GET in the schema."""
    found = []
    for path, operations in api.get_openapi_schema()["paths"].items():
        for parameter in operations.get("get", {}).get("parameters", []):
            schema = parameter.get("schema", {})
            formats = {schema.get("format")} | {s.get("format") for s in schema.get("anyOf", [])}
            if parameter["in"] == "query" and "date-time" in formats:
                found.append((path, parameter["name"]))
    return found


DATETIME_QUERIES = _openapi_datetime_queries()


def test_it_finds_the_date_time_query_parameters_in_the_schema():
    assert ("/api/v1/audit", "since") in DATETIME_QUERIES
    assert ("/api/v1/audit", "until") in DATETIME_QUERIES


@pytest.mark.parametrize(("path", "parameter"), DATETIME_QUERIES)
@pytest.mark.parametrize(
    "value",
    [*EXTREMES, "0001-01-01T00:00:00Z", "9999-12-31T23:59:59.999999Z", "99999-01-01T00:00:00Z",
     "2024-01-01T00:00:00+24:00", "2024-02-30T00:00:00Z", "2024-01-01T00:00:00"],
)
def test_it_survives_extreme_values_in_every_date_time_query_parameter(
    tenant, path, parameter, value
):
    path = path.removeprefix("/api/v1").format(
        name=tenant.domain.name, address=tenant.mailbox.address, token_id=tenant.spare_token.pk
    )
    response = tenant.rw.get(path, {parameter: value})
    assert response.status_code in (200, 422), (path, parameter, value, response.content)
    if response.status_code == 422:
        assert response.json()["field"] == parameter


@pytest.mark.parametrize(
    "path",
    ["/mailboxes/alice@acme.test/suspend", "/domains/acme.test/bimi", "/mailboxes",
     "/domains/acme.test/dns/check", "/tokens"],
)
def test_it_answers_400_to_a_multipart_body_without_a_boundary(tenant, path):
    headers = tenant.rw.headers({"Idempotency-Key": secrets.token_hex(8)})
    response = tenant.rw.client.post(
        f"/api/v1{path}", b"--x\r\n", content_type="multipart/form-data", headers=headers
    )
    body = _error(response, 400)
    assert "multipart" in body["detail"] or "parse" in body["detail"]
    tenant.mailbox.refresh_from_db()
    assert tenant.mailbox.status == "active"
    assert not IdempotencyRecord.objects.filter(status_code__gte=500).exists()


def test_it_answers_400_to_a_page_post_with_a_multipart_body_without_a_boundary(tenant):
    user = MembershipFactory(organisation=tenant.organisation, role="owner").user
    user.save()
    tenant.rw.client.force_login(user)
    response = tenant.rw.client.post(
        "/mail-admin/acme/tokens/", b"--x\r\n", content_type="multipart/form-data"
    )
    assert response.status_code == 400
    assert ApiToken.objects.filter(organisation=tenant.organisation).count() == 3


@contextmanager
def not_a_dns_server(reply: bytes):
    """A TCP server on loopback that answers every connection like a web server would."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            with connection:
                connection.settimeout(2)
                try:
                    connection.recv(4096)
                    connection.sendall(reply)
                except OSError:
                    pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    port = listener.getsockname()[1]
    try:
        yield port
    finally:
        stop.set()
        socket.create_connection(("127.0.0.1", port)).close()  # wake the blocked accept()
        thread.join(timeout=5)
        listener.close()


@pytest.mark.parametrize(
    "reply",
    [b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
     b"\x00\x05hello", b""],
    ids=["http", "short-garbage", "closes"],
)
def test_it_answers_a_json_error_when_publishing_to_a_server_that_is_not_dns(
    tenant, reply, settings
):
    settings.MAILHOST_DNS_PUBLISH_ALLOWED_NETWORKS = ["127.0.0.1/32"]  # the fake server's network
    with not_a_dns_server(reply) as port:
        posture_update(
            actor=SYSTEM, domain=tenant.domain, auto_publish=True, publish_server="127.0.0.1",
            publish_port=port, tsig_key_name="mailhost-key",
            tsig_secret=base64.b64encode(secrets.token_bytes(32)).decode(),
        )
        response = tenant.rw.post("/domains/acme.test/dns/publish")
    assert 400 <= response.status_code < 600 and response.status_code != 500, response.content
    body = response.json()
    assert body["code"] and body["detail"]
    tenant.domain.posture.refresh_from_db()
    assert tenant.domain.posture.last_published_at is None
    assert tenant.domain.posture.last_publish_error


def test_it_filters_the_audit_page_by_time_and_refuses_an_extreme_one(tenant):
    user = MembershipFactory(organisation=tenant.organisation, role="viewer").user
    user.save()
    client = tenant.rw.client
    client.force_login(user)
    page = "/mail-admin/acme/audit/"
    assert b"api_token.create" in client.get(page, {"since": "2000-01-01T00:00:00+05:30"}).content
    assert b"api_token.create" not in client.get(page, {"until": "2000-01-01T00:00"}).content
    response = client.get(page, {"until": OUT_OF_RANGE[0]})
    assert response.status_code == 422
    assert b"out of range" in response.content
