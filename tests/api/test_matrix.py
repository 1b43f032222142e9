"""Every endpoint, four ways: it works; another organisation's token gets 404; a read-only
token gets 403 on writes; bad input gets 422 naming the field.

Paths and bodies name the `tenant` fixture's objects (organisation "acme", domain acme.test,
mailbox alice@acme.test, deleted mailbox gone@acme.test, alias info@acme.test, empty domain
empty.acme.test, a spare token); `other` is organisation "globex" with its own tokens.
"""

import re
from dataclasses import dataclass

import jsonschema_rs  # schemathesis's validator
import pytest

from mailboxes.models import Alias, Domain, Mailbox
from tenants.models import ApiToken
from tests.api.conftest import ApiClient, person_for

pytestmark = pytest.mark.django_db

SPARE = "{spare}"  # replaced by the tenant's spare token id


@dataclass(frozen=True)
class Case:
    method: str
    path: str
    body: dict | None = None  # the JSON body (POST/PATCH) or query (GET) that works
    ok: int = 200
    write: bool = False
    # Another organisation's token naming acme's things (default: the path and body above).
    # A list of one's own has nothing of acme's to name: there, acme is simply absent.
    foreign_body: dict | None = None
    foreign_absent: bool = False
    # Bad input: a body/query, or a path, and the field the 422 names. None: the endpoint takes
    # no input but its path, where an impossible name is simply not found (covered by 404).
    bad_body: dict | None = None
    bad_path: str | None = None
    bad_field: str | None = None
    # Only a signed-in person may (token management): it works for one, a token gets 403.
    person: bool = False


CASES = [
    Case("GET", "/organisations", bad_body={"limit": 0}, bad_field="limit", foreign_absent=True),
    Case("GET", "/tokens", foreign_body={"organisation": "acme"},
         bad_body={"limit": 501}, bad_field="limit"),
    Case("POST", "/tokens", {"name": "ci"}, ok=201, write=True, person=True,
         foreign_body={"name": "ci", "organisation": "acme"},
         bad_body={"name": ""}, bad_field="name"),
    Case("GET", f"/tokens/{SPARE}", bad_path="/tokens/abc", bad_field="token_id"),
    Case("DELETE", f"/tokens/{SPARE}", write=True, person=True, bad_path="/tokens/0",
         bad_field="token_id"),
    Case("GET", "/audit", foreign_body={"organisation": "acme"},
         bad_body={"since": "yesterday"}, bad_field="since"),
    Case("GET", "/domains", foreign_body={"organisation": "acme"},
         bad_body={"status": "gone"}, bad_field="status"),
    Case("POST", "/domains", {"name": "new.test"}, ok=201, write=True,
         foreign_body={"name": "new.test", "organisation": "acme"},
         bad_body={"name": "not a domain"}, bad_field="name"),
    Case("GET", "/domains/acme.test"),
    Case("PATCH", "/domains/acme.test", {"status": "disabled"}, write=True,
         bad_body={"default_quota_mb": 0}, bad_field="default_quota_mb"),
    Case("DELETE", "/domains/empty.acme.test", ok=204, write=True),
    Case("POST", "/domains/acme.test/verify", write=True),
    Case("GET", "/mailboxes", foreign_body={"domain": "acme.test"},
         bad_body={"status": "sleeping"}, bad_field="status"),
    Case("POST", "/mailboxes", {"address": "bob@acme.test"}, ok=201, write=True,
         bad_body={"address": "bob@acme.test", "quota_mb": 0}, bad_field="quota_mb"),
    Case("POST", "/mailboxes/bulk", {"mailboxes": [{"address": "bob@acme.test"}]}, write=True,
         foreign_body={"mailboxes": [{"address": "bob@acme.test"}], "organisation": "acme"},
         bad_body={"mailboxes": [{"address": "bob@acme.test", "quota_mb": "lots"}]},
         bad_field="mailboxes[0].quota_mb"),
    Case("GET", "/mailboxes/alice@acme.test",
         bad_body={"include_deleted": "perhaps"}, bad_field="include_deleted"),
    Case("PATCH", "/mailboxes/alice@acme.test", {"display_name": "Alice B"}, write=True,
         bad_body={"address": "alice@globex.test"}, bad_field="address"),
    Case("DELETE", "/mailboxes/alice@acme.test", write=True),
    Case("POST", "/mailboxes/alice@acme.test/password", {}, write=True,
         bad_body={"password": "short"}, bad_field="password"),
    Case("POST", "/mailboxes/alice@acme.test/suspend", write=True),
    Case("POST", "/mailboxes/alice@acme.test/resume", write=True),
    Case("POST", "/mailboxes/gone@acme.test/restore", write=True),
    Case("GET", "/aliases", foreign_body={"domain": "acme.test"},
         bad_body={"search": "a\x00b"}, bad_field="search"),
    Case("POST", "/aliases", {"address": "sales@acme.test", "destinations": ["alice@acme.test"]},
         ok=201, write=True,
         bad_body={"address": "sales@acme.test", "destinations": []}, bad_field="destinations"),
    Case("GET", "/aliases/info@acme.test"),
    Case("PATCH", "/aliases/info@acme.test", {"destinations": ["bob@example.net"]}, write=True,
         bad_body={"destinations": ["not an address"]}, bad_field="destinations"),
    Case("DELETE", "/aliases/info@acme.test", ok=204, write=True),
]
IDS = [f"{case.method} {case.path}" for case in CASES]


def call(client, case: Case, tenant, *, path=None, body=None):
    path = (path or case.path).replace(SPARE, str(tenant.spare_token.pk))
    if case.method == "GET":
        return client.get(path, body)
    return client.send(case.method, path, body)


@pytest.fixture(scope="module")
def openapi(django_db_blocker):
    with django_db_blocker.unblock():
        return ApiClient().get("/openapi.json").json()


def _names(body, key="name"):
    return sorted(item[key] for item in body["items"])


def _mailbox(address):
    local_part, domain = address.split("@")
    return Mailbox.objects.get(local_part=local_part, domain__name=domain)


# What each call that works leaves behind or shows, as the caller would rely on it: the listed
# objects are the tenant's own, and a write is in the database (and in its answer).
EFFECTS = {
    "GET /organisations": lambda t, body: _names(body, "slug") == ["acme"],
    "GET /tokens": lambda t, body: _names(body) == ["ro", "rw", "spare"]
    and "token" not in body["items"][0],
    "POST /tokens": lambda t, body: body["name"] == "ci"
    and ApiToken.objects.get(organisation=t.organisation, name="ci").token_hash
    == ApiToken.hash(body["token"]),
    "GET /tokens/{spare}": lambda t, body: (body["id"], body["name"], body["usable"])
    == (t.spare_token.pk, "spare", True),
    "DELETE /tokens/{spare}": lambda t, body: body["usable"] is False
    and ApiToken.objects.get(pk=t.spare_token.pk).revoked_at is not None,
    "GET /audit": lambda t, body: {e["action"] for e in body["items"]} >= {"api_token.create"}
    and {e["target"].split(" ")[0] for e in body["items"]} >= {"spare"},
    "GET /domains": lambda t, body: _names(body) == ["acme.test", "empty.acme.test"],
    "POST /domains": lambda t, body: body["name"] == "new.test"
    and Domain.objects.filter(organisation=t.organisation, name="new.test").exists(),
    "GET /domains/acme.test": lambda t, body: (body["name"], body["status"])
    == ("acme.test", "active"),
    "PATCH /domains/acme.test": lambda t, body: body["status"] == "disabled"
    and Domain.objects.get(pk=t.domain.pk).status == "disabled",
    "DELETE /domains/empty.acme.test": lambda t, body: not Domain.objects.filter(
        pk=t.empty_domain.pk
    ).exists(),
    "POST /domains/acme.test/verify": lambda t, body: body["verified"] is True
    and Domain.objects.get(pk=t.domain.pk).is_verified,
    "GET /mailboxes": lambda t, body: _names(body, "address") == ["alice@acme.test"],
    "POST /mailboxes": lambda t, body: body["address"] == "bob@acme.test"
    and len(body["password"]) >= 16
    and _mailbox("bob@acme.test").deleted_at is None,
    "POST /mailboxes/bulk": lambda t, body: (body["created"], body["results"][0]["result"])
    == (1, "created")
    and _mailbox("bob@acme.test").domain == t.domain,
    "GET /mailboxes/alice@acme.test": lambda t, body: (body["address"], body["display_name"])
    == ("alice@acme.test", "Alice"),
    "PATCH /mailboxes/alice@acme.test": lambda t, body: body["display_name"] == "Alice B"
    and _mailbox("alice@acme.test").display_name == "Alice B",
    "DELETE /mailboxes/alice@acme.test": lambda t, body: body["deleted"] is True
    and _mailbox("alice@acme.test").deleted_at is not None,
    "POST /mailboxes/alice@acme.test/password": lambda t, body: len(body["password"]) >= 16
    and _mailbox("alice@acme.test").password_hash != t.mailbox.password_hash,
    "POST /mailboxes/alice@acme.test/suspend": lambda t, body: body["status"] == "suspended"
    and _mailbox("alice@acme.test").status == "suspended",
    "POST /mailboxes/alice@acme.test/resume": lambda t, body: body["status"] == "active"
    and _mailbox("alice@acme.test").status == "active",
    "POST /mailboxes/gone@acme.test/restore": lambda t, body: body["deleted"] is False
    and _mailbox("gone@acme.test").deleted_at is None,
    "GET /aliases": lambda t, body: [(a["address"], a["destinations"]) for a in body["items"]]
    == [("info@acme.test", ["alice@acme.test"])],
    "POST /aliases": lambda t, body: Alias.objects.get(domain=t.domain, local_part="sales")
    .destinations == ["alice@acme.test"],
    "GET /aliases/info@acme.test": lambda t, body: body["destinations"] == ["alice@acme.test"],
    "PATCH /aliases/info@acme.test": lambda t, body: Alias.objects.get(pk=t.alias.pk)
    .destinations == ["bob@example.net"],
    "DELETE /aliases/info@acme.test": lambda t, body: not Alias.objects.filter(
        pk=t.alias.pk
    ).exists(),
}


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_it_works(case, tenant, openapi):
    client = person_for(tenant.organisation) if case.person else tenant.rw
    response = call(client, case, tenant, body=case.body)
    assert response.status_code == case.ok, response.content
    body = None
    if case.ok != 204:
        assert_documented(openapi, case, response)
        body = response.json()
    label = f"{case.method} {case.path}"
    assert EFFECTS[label](tenant, body), f"{label} answered {body} but did not do what it says"


def test_it_says_what_every_case_does():
    assert set(EFFECTS) == set(IDS)


@pytest.mark.parametrize("case", [c for c in CASES if c.person], ids=[
    i for c, i in zip(CASES, IDS, strict=True) if c.person
])
def test_it_answers_403_to_a_token_managing_tokens(case, tenant):
    before = _state()
    response = call(tenant.rw, case, tenant, body=case.body)
    assert response.status_code == 403, response.content
    assert _state() == before


def assert_documented(openapi: dict, case: Case, response) -> None:
    """The response body validates against the schema the OpenAPI document gives it."""
    operation = openapi["paths"]["/api/v1" + _template(case.path)][case.method.lower()]
    documented = operation["responses"][str(response.status_code)]
    schema = documented["content"]["application/json"]["schema"]
    validator = jsonschema_rs.Draft202012Validator({**schema, "components": openapi["components"]})
    validator.validate(response.json())


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_it_answers_404_to_another_organisations_token(case, tenant, other):
    before = _state()
    response = call(other.rw, case, tenant, body=case.foreign_body or case.body)
    if case.foreign_absent:
        assert response.status_code == 200
        assert "acme" not in response.content.decode()
        return
    assert response.status_code == 404, response.content
    assert response.json()["code"] == "not_found"
    assert _state() == before


@pytest.mark.parametrize("case", [c for c in CASES if c.write], ids=[
    i for c, i in zip(CASES, IDS, strict=True) if c.write
])
def test_it_answers_403_to_a_read_only_token_writing(case, tenant):
    before = _state()
    response = call(tenant.ro, case, tenant, body=case.body)
    assert response.status_code == 403, response.content
    assert response.json()["code"] == "forbidden"
    assert _state() == before


@pytest.mark.parametrize("case", [c for c in CASES if c.bad_field], ids=[
    i for c, i in zip(CASES, IDS, strict=True) if c.bad_field
])
def test_it_answers_422_naming_the_field_of_bad_input(case, tenant):
    before = _state()
    response = call(tenant.rw, case, tenant, path=case.bad_path, body=case.bad_body)
    assert response.status_code == 422, response.content
    body = response.json()
    assert body["code"] in ("invalid", "idempotency_key_reused")
    assert body["field"] == case.bad_field
    assert body["detail"]
    assert _state() == before


def test_it_covers_every_tenants_and_mailboxes_endpoint_of_the_schema(anonymous):
    schema = anonymous.get("/openapi.json").json()
    documented = {
        (method.upper(), path.removeprefix("/api/v1"))
        for path, operations in schema["paths"].items()
        for method, operation in operations.items()
        if operation["operationId"].startswith(("tenants_api_", "mailboxes_api_"))
    }
    covered = {(case.method, _template(case.path)) for case in CASES}
    assert documented == covered


def _template(path: str) -> str:
    path = path.replace(SPARE, "{token_id}")
    path = re.sub(r"^/domains/[^/]+", "/domains/{name}", path)
    return re.sub(r"/[^/]*@[^/]*", "/{address}", path)


def _state():
    """What a refused request must not change."""
    return (
        list(Domain.objects.order_by("pk").values_list("name", "status", "default_quota_mb")),
        list(
            Mailbox.objects.order_by("pk").values_list(
                "local_part", "display_name", "status", "deleted_at", "password_hash"
            )
        ),
        list(Alias.objects.order_by("pk").values_list("local_part", "destinations")),
        list(ApiToken.objects.order_by("pk").values_list("name", "revoked_at")),
    )
