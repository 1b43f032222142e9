"""The tenant-isolation sweep: every URL pattern and every API operation, tried by every kind of
actor against organisation A ("victim"), with the state of every table compared before and
after each request.

- Organisation B's operator (session) and B's API token get 404 for anything that names A's
  objects, and A's state is unchanged; what they can see names nothing of A's.
- A's viewer (session) and A's read-only token get 403 for every write, state unchanged; their
  reads change nothing either.
- A's writer succeeds (2xx/3xx) with the same request, which proves the route works and the
  refused request would have written.
- Mailbox holders: holder B cannot touch holder A's app passwords, forwarding or password.
- Everything else is listed: public routes with the reason each is public, the staff-only
  Django admin, the operator's own account pages.

Routes come from Django's resolver and operations from /api/v1/openapi.json (tests/security/
sweep.py), so a new page or endpoint is swept as soon as it exists; one that names something
the sweep's tables do not know fails with a message saying which line to add.
"""

from __future__ import annotations

import base64
import re
import secrets
import shutil
import tempfile
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import pytest
from django.db import transaction
from django.test import Client, TestCase
from django.urls import reverse

from tests.dns_server import KnotServer
from tests.factories import TEST_PASSWORD, MembershipFactory, UserFactory
from tests.security import sweep
from tests.security.sweep import VICTIM, World
from tests.stack import free_ports

pytestmark = pytest.mark.django_db

ROUTES = sweep.routes()
OPERATIONS = sweep.operations(sweep.openapi_schema())

# --- what each route is -------------------------------------------------------------------------

# Routes anyone may fetch, each with the reason it is public (full route pattern → reason).
PUBLIC = {
    "": "redirects to /mail-admin/",
    "api/v1/openapi.json": "the API's own description; names no tenant data",
    "api/v1/docs": "the API's own documentation page",
    "api/v1/": "the API root",
    "api/v1/<path:rest>": "JSON 404 for unknown API paths",
    "api/v1/health": "health of the database, broker and nodes for monitors; secret-free",
    ".well-known/autoconfig/mail/config-v1.1.xml": "mail clients configure themselves (any "
    "hosted domain's servers are public: they are its MX)",
    "mail/config-v1.1.xml": "mail client autoconfiguration (Thunderbird)",
    "autodiscover/autodiscover.xml": "mail client autoconfiguration (Outlook)",
    "Autodiscover/Autodiscover.xml": "mail client autoconfiguration (Outlook, other case)",
    ".well-known/mta-sts.txt": "RFC 8461 policy, fetched anonymously by sending MTAs",
    "bimi/<str:name>/logo.svg": "BIMI logo, fetched anonymously by mail clients",
    "mailbox/login/": "the mailbox holder's sign-in form",
    "mailbox/logout/": "ends the caller's own holder session",
    "admin/login/": "Django admin's sign-in form; everything behind it is staff-only",
    "admin/logout/": "ends the caller's own session",
    "metrics": "Prometheus figures: 404 unless MAILHOST_METRICS_TOKEN is set, then 401 without "
    "that bearer token (tests/status/test_metrics.py): the operator's monitoring",
}
# Public API operations ("METHOD /path"): the schema marks them with no security.
PUBLIC_API = {"GET /health": PUBLIC["api/v1/health"]}

# Surfaces by prefix: every route not in PUBLIC belongs to exactly one.
SURFACES = {
    "api/v1/": "api",  # swept through the OpenAPI schema
    "mail-admin/": "operator",
    "mailbox/": "holder",
    "admin/": "staff",
    # allauth: the signed-in operator's own account (login, password, e-mail, MFA). No URL
    # names an organisation's object; the links that carry a key (e-mail confirmation,
    # password reset) are allauth's own secret-bearing flows.
    "accounts/": "own-account",
    # The send API's GraphQL door: organisation tokens only, the same services and access
    # checks as /api/v1/messages; its isolation is tested in tests/delivery/test_graphql.py.
    "graphql": "graphql",
}


def surface(route: sweep.Route) -> str | None:
    if route.pattern in PUBLIC:
        return "public"
    for prefix, name in SURFACES.items():
        if route.pattern.startswith(prefix):
            return name
    return None


OPERATOR_ROUTES = [r for r in ROUTES if surface(r) == "operator"]
HOLDER_ROUTES = [r for r in ROUTES if surface(r) == "holder"]
STAFF_ROUTES = [r for r in ROUTES if surface(r) == "staff"]
PUBLIC_ROUTES = [r for r in ROUTES if surface(r) == "public"]
PROTECTED_OPERATIONS = [op for op in OPERATIONS if not op.public]

# Pages that answer a POST like a GET: they write nothing, whoever posts. (URL name → what it is)
READ_PAGES = {
    "tenants:switch": "the organisation switcher's redirect",
    "tenants:audit": "the audit log",
    "mailboxes:home": "the organisation chooser",
    "mailboxes:dashboard": "the dashboard",
    "delivery:sent": "the sent mail list",
    "routing:queue": "the organisation's queued mail",
    "routing_staff:queue": "every node's queued mail (staff)",
    "delivery:sent_message": "a sent message's timeline",
    "mailboxes:search": "search results",
    "mailboxes:domains": "the domain list",
    "mailboxes:domain": "a domain's page",
    "reports:domain": "a domain's DMARC and TLS reports",
    "mailboxes:domain_dns": "a domain's DNS records",
    "mailboxes:domain_zone": "a domain's zone file download",
    "mailboxes:mailboxes": "the mailbox list",
    "mailboxes:export": "the CSV export",
    "mailboxes:import": "an import's progress",
    "mailboxes:aliases": "the alias list",
    "mailbox:home": "the holder's start page",
    "mailbox:setup": "connection settings",
    "mailbox:mobileconfig": "the Apple configuration profile download",
    "bans:list": "the login bans list",
    "status:page": "the status page (staff: all checks; members: their domains')",
}

# Links that carry a secret instead of an organisation: nobody but the one it was sent to may
# use it, so every actor here is refused (URL name → what it is).
BEARER_LINKS = {
    "tenants:accept": "an invitation link: only the invited address may accept it",
}

# What the writer's sample may answer instead of 2xx/3xx, and why ("METHOD id" → reason).
WRITER_REFUSED: dict[str, tuple[set[int], str]] = {
    "GET mailboxes:import_passwords": (
        {405}, "POST only: it hands an import's generated passwords out once"
    ),
    "GET mailboxes:domain_verify": ({405}, "POST only"),
    "GET mailbox:webmail": ({405}, "POST only: a sign-on token comes from the form, never a link"),
    "GET mailboxes:domain_mark_verified": ({405}, "POST only"),
    "POST /staff/domains/{name}/move": (
        {409, 422}, "the sweep runs one node: there is no other to move the domain to "
        "(tests/multinode/test_move_doors.py and test_move.py move between two)"
    ),
    "POST /domains/{name}/dns/publish": (
        {409}, "needs an RFC 2136 server set up for the domain (tests/identity/test_publish.py)"
    ),
    "POST /messages": (
        {503}, "sends through the mail node, which this sweep does not run (tests/delivery/ "
        "test_send_api.py sends for real)"
    ),
    **{
        request: ({404}, "the sweep runs no node, so no message is queued to act on "
                         "(tests/routing/test_queue.py acts on real ones)")
        for request in ("POST /queue/{queue_id}/{action}", "GET routing:queue_action",
                        "POST routing:queue_action", "POST /staff/queue/{queue_id}/{action}",
                        "GET routing_staff:queue_action", "POST routing_staff:queue_action")
    },
    **{
        request: ({422}, "the sweep sets no backup target (tests/backups/test_page.py sets one "
                         "and starts a backup)")
        for request in ("GET backups:start", "POST backups:start")
    },
    **{
        request: ({422}, "the sample relay is on loopback, which relays may not use "
                         "(tests/pages/test_relays.py tests a fake relay)")
        for request in ("POST /relays/{relay_id}/test", "POST routing:relay_test")
    },
}
# Writes whose writer sample succeeds without changing any row, and why.
WRITER_NO_CHANGE: dict[str, str] = {
    "POST backups:list": "the list answers POST like GET (starting a backup is backups:start)",
    "POST /domains/{name}/dkim/advance": "no rotation is in flight on the sample domain, so no "
    "step is due (tests/identity/test_dkim_rotation.py takes the steps)",
    "POST /domains/{name}/verify": "the sample .test domain is verified at creation",
    "POST /staff/organisations/{slug}/unsuspend": "A is not suspended (tests/api/test_staff.py "
    "lifts a real suspension)",
    "POST tenants:unsuspend": "A is not suspended (tests/pages/test_onboarding.py lifts one)",
    "POST mailboxes:domain_verify": "the sample .test domain is verified at creation",
    "POST mailboxes:domain_mark_verified": "the sample .test domain is verified at creation",
    "POST routing_staff:queue": "a read-only page (staff's queue list): a POST shows it",
    "POST mailboxes:domain_move": "the sweep runs one node: there is no other to move the "
    "domain to (tests/multinode/test_move_doors.py moves one from its page)",
}
# Operations only a person (a signed-in session) may do, not an API token, and why: A's
# read-write token is refused (403) and changes nothing; A's owner's session does them.
PEOPLE_ONLY: dict[str, str] = {
    "POST /tokens": "API tokens cannot create tokens (issue 10 finding 11)",
    "DELETE /tokens/{token_id}": "a token may revoke only itself (issue 10 finding 11)",
}

# Refusals that rightly write one thing, and why: request id → (tables it may change, reason).
# Everything else a refused request touches is still a failure.
REFUSAL_WRITES: dict[str, tuple[set[str], str]] = {
    "POST tenants:accept": ({"tenants.AuditEvent"}, "a refused acceptance is audited"),
}

# Routes only staff may use (install-wide things, limits staff set): every other actor is
# refused (403/404) and changes nothing; a staff session's sample succeeds instead of A's
# writer's. ("METHOD /path" for the API, URL name for pages → why it is staff-only.)
STAFF_ONLY: dict[str, str] = {
    **{
        f"{method} /staff/organisations{path}": "the staff API: install-wide onboarding"
        for method, path in (
            ("GET", ""), ("POST", ""), ("GET", "/{slug}"), ("POST", "/{slug}/invitations"),
            ("POST", "/{slug}/suspend"), ("POST", "/{slug}/unsuspend"),
        )
    },
    "PUT /staff/organisations/{slug}/sending-quota": "sending quotas are limits staff set",
    "GET /staff/organisations/{slug}/encryption": "encryption at rest is staff's to see",
    "PUT /staff/organisations/{slug}/encryption": "encryption at rest is staff's to set",
    "tenants:organisation_new": "creating a client organisation is staff's",
    "tenants:suspend": "suspending an organisation is staff's",
    "tenants:unsuspend": "lifting a suspension is staff's",
    "tenants:encryption": "encryption at rest is staff's to set",
    "mailboxes:domain_mark_verified": "marking a domain verified without DNS is staff's call",
    "GET /staff/domains/{name}/move": "which node a domain lives on is the service's business",
    "POST /staff/domains/{name}/move": "moving a domain between nodes is an operator action",
    "mailboxes:domain_move": "moving a domain between nodes is an operator action",
    **{
        f"{method} /staff/tls-{path}": "outbound TLS is install-wide: a policy applies to "
        "every sender, a TLS-RPT report is the service's"
        for method, path in (("GET", "policies"), ("POST", "policies"),
                             ("GET", "policies/{domain}"), ("DELETE", "policies/{domain}"),
                             ("GET", "failures"))
    },
    "routing:tls": "outbound TLS policies and failures are install-wide (staff's)",
    "routing:tls_remove": "outbound TLS policies are install-wide (staff's)",
    "GET /staff/queue": "every organisation's queued mail (bounces too) is staff's to see",
    "POST /staff/queue/{queue_id}/{action}": "acting on any organisation's queued mail",
    "routing_staff:queue": "every organisation's queued mail is staff's to see",
    "routing_staff:queue_action": "acting on any organisation's queued mail",
    "backups:list": "backups hold every organisation's mail and the portal database",
    "backups:start": "a backup covers any organisation (or the whole install)",
}

# Known holes fixed on another branch: (request id, actor) → the finding. Strict: once the fix
# is merged the test passes, the xfail turns into a failure, and the line must go.
KNOWN: dict[tuple[str, str], str] = {}


# --- the world: built once per module, each test rolled back --------------------------------


@dataclass
class Sweep:
    a: World
    b: World
    sessions: dict[str, str]  # actor → session key


def _operator_session(user) -> str:
    user.save()  # the factory sets the password without saving it
    client = Client()
    client.force_login(user)
    return client.session.session_key


def _holder_session(mailbox) -> str:
    client = Client()
    response = client.post(
        "/mailbox/login/", {"address": mailbox.address, "password": TEST_PASSWORD}
    )
    assert response.status_code == 302, response.content
    return client.session.session_key


@pytest.fixture(scope="module")
def knot_resolver():
    """A real Knot server for the domains' live DNS checks (answers at once, mostly "wrong")."""
    directory = tempfile.mkdtemp(prefix="mh-sweep-knot-", dir="/tmp")
    server = KnotServer(
        directory=Path(directory), port=free_ports(1)[0],
        zones={"victim.test": "@ IN A 127.0.0.1"}, broken=[],
        key_secret=base64.b64encode(secrets.token_bytes(32)).decode(),
    )
    server.start()
    yield server.address
    server.stop()
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="module")
def world(django_db_setup, django_db_blocker):
    """Organisations A and B, built once in a transaction that is rolled back at the end of
    the module; each test runs in a savepoint inside it and is rolled back too."""
    with django_db_blocker.unblock():
        outer = transaction.atomic()
        outer.__enter__()
        try:
            a, b = sweep.build_world(VICTIM), sweep.build_world("intruder")
            # Admin in B and viewer in A: may act in B, must not reach A's objects through B.
            dual = MembershipFactory(organisation=b.org, role="admin").user
            MembershipFactory(organisation=a.org, user=dual, role="viewer")
            staff = UserFactory(is_staff=True, is_superuser=True)
            sessions = {
                "staff": _operator_session(staff),
                "a_owner": _operator_session(a.owner),
                "a_viewer": _operator_session(a.viewer),
                "b_owner": _operator_session(b.owner),
                "dual": _operator_session(dual),
                "a_holder": _holder_session(a.mailbox),
                "b_holder": _holder_session(b.mailbox),
            }
        except BaseException:
            transaction.set_rollback(True)
            outer.__exit__(None, None, None)
            raise
    yield Sweep(a=a, b=b, sessions=sessions)
    with django_db_blocker.unblock():
        transaction.set_rollback(True)
        outer.__exit__(None, None, None)


@pytest.fixture(autouse=True)
def _sweep_settings(settings, knot_resolver):
    settings.API_RATE_LIMIT = 0  # hundreds of requests per token; limits have their own tests
    settings.MAILHOST_DNS_RESOLVERS = [knot_resolver]
    settings.MAILHOST_DNS_TIMEOUT_MS = 500
    settings.MAILHOST_DNS_LIFETIME_MS = 1000


@dataclass
class Outcome:
    response: object
    before: dict
    after: dict
    callbacks: list
    request_id: str = ""

    @property
    def status(self) -> int:
        return self.response.status_code

    @cached_property
    def body(self) -> str:
        if getattr(self.response, "streaming", False):
            return b"".join(self.response.streaming_content).decode(errors="replace")
        return self.response.content.decode(errors="replace")

    def explain(self, expected: str) -> str:
        return f"expected {expected}, got {self.status}: {self.body[:400]}"

    def assert_unchanged(self) -> None:
        allowed = REFUSAL_WRITES.get(self.request_id, (set(), ""))[0]
        before = {k: v for k, v in self.before.items() if k not in allowed}
        after = {k: v for k, v in self.after.items() if k not in allowed}
        assert after == before, "state changed:\n" + sweep.describe_change(before, after)
        assert not self.callbacks, f"side effects scheduled on commit: {self.callbacks}"

    def assert_changed(self) -> None:
        assert self.after != self.before or self.callbacks, (
            "the writer's request succeeded but changed nothing: the body or form does not "
            "write, so the refused requests prove nothing (fix API_BODIES/PAGE_FORMS; list it "
            "in WRITER_NO_CHANGE with the reason, or in READ_PAGES if the page only reads)"
        )

    def assert_no_leak(self, sent: list[str]) -> None:
        """Nothing of A's in the answer, beyond the names the request itself sent."""
        body = self.body.lower()
        for value in sent:
            body = body.replace(value.lower(), "")
        assert VICTIM not in body, f"the response names organisation A's objects: {self.body}"


def perform(call, request_id: str = "") -> Outcome:
    before = sweep.snapshot()
    with TestCase.captureOnCommitCallbacks(execute=False) as callbacks:
        response = call()
    return Outcome(response, before, sweep.snapshot(), list(callbacks), request_id)


def prepare(build):
    try:
        return build()
    except sweep.UnknownParameter as exc:
        pytest.fail(str(exc))


# --- the API --------------------------------------------------------------------------------

# actor → (session, token) of that actor.
API_ACTORS = {
    "intruder_token": (None, "b_rw"),
    "intruder_session": ("b_owner", None),
    # B's token on a list without filters: B's own items, and nothing of A's among them.
    "intruder_unfiltered": (None, "b_rw"),
    "read_only_token": (None, "a_ro"),
    "viewer_session": ("a_viewer", None),
    "writer_token": (None, "a_rw"),
    "writer_session": ("a_owner", None),
    "holder_session": ("a_holder", None),
    "anonymous": (None, None),
}


def _api_case_marks(op: sweep.Operation, actor: str):
    reason = KNOWN.get((op.id, actor))
    return [pytest.mark.xfail(strict=True, raises=AssertionError, reason=reason)] if reason else []


API_CASES = [
    pytest.param(op, actor, id=f"{op.id} as {actor}", marks=_api_case_marks(op, actor))
    for op in PROTECTED_OPERATIONS
    for actor in API_ACTORS
]


@pytest.mark.parametrize(("op", "actor"), API_CASES)
def test_it_isolates_every_api_operation(world, op, actor):
    prepared = prepare(lambda: sweep.api_request(world.a, op))
    if actor == "intruder_unfiltered":
        if op.method != "GET" or op.path_params or not prepared.query:
            pytest.skip("not a list with filters")
        prepared = sweep.Prepared(prepared.path)
    session, token = API_ACTORS[actor]
    tokens = {"a_rw": world.a.rw_token, "a_ro": world.a.ro_token, "b_rw": world.b.rw_token}
    client = sweep.session_client(world.sessions.get(session))
    outcome = perform(
        lambda: sweep.send_api(client, op.method, prepared, tokens.get(token)), op.id
    )

    if op.id in STAFF_ONLY and actor not in ("holder_session", "anonymous"):
        assert_staff_only(outcome, actor)
        if actor == "writer_token":
            staff = sweep.session_client(world.sessions["staff"])
            sample = perform(lambda: sweep.send_api(staff, op.method, prepared, None))
            assert_writer_succeeds(op.id, op.write, sample)
    elif actor.startswith("intruder"):
        if prepared.names_victim:
            assert outcome.status == 404, outcome.explain("404")
            assert outcome.response.json()["code"] == "not_found"
        else:
            assert 200 <= outcome.status < 300, outcome.explain("2xx (their own data)")
        outcome.assert_no_leak(sweep.sent_strings(prepared))
        outcome.assert_unchanged()
    elif actor in ("read_only_token", "viewer_session"):
        expected = 403 if op.write else 200
        assert outcome.status == expected, outcome.explain(str(expected))
        outcome.assert_unchanged()
    elif actor in ("holder_session", "anonymous"):
        assert outcome.status == 401, outcome.explain("401")
        outcome.assert_unchanged()
    elif actor == "writer_token" and op.id in PEOPLE_ONLY:
        assert outcome.status == 403, outcome.explain("403: people only, not tokens")
        outcome.assert_unchanged()
    else:
        assert_writer_succeeds(op.id, op.write, outcome)


def assert_staff_only(outcome: Outcome, actor: str) -> None:
    allowed = {403, 404}
    if 405 in WRITER_REFUSED.get(outcome.request_id, ((),))[0]:
        allowed.add(405)  # the route takes no such method at all
    assert outcome.status in allowed, outcome.explain(f"403/404: staff only, not {actor}")
    outcome.assert_unchanged()


def assert_writer_succeeds(request_id: str, write: bool, outcome: Outcome) -> None:
    refused = WRITER_REFUSED.get(request_id)
    if refused and outcome.status in refused[0]:
        outcome.assert_unchanged()
        return
    assert 200 <= outcome.status < 400, outcome.explain(
        "2xx/3xx: the route must work for A's writer (or list it in WRITER_REFUSED with why)"
    )
    if write and request_id not in WRITER_NO_CHANGE:
        outcome.assert_changed()
    if not write:
        outcome.assert_unchanged()  # reads have no side effects


# --- operator pages -------------------------------------------------------------------------

# actor → (session, which organisation goes into <org>: "a" or "b")
PAGE_ACTORS = {
    "intruder": ("b_owner", "a"),
    "intruder_own_org": ("b_owner", "b"),
    "dual_member_own_org": ("dual", "b"),
    "viewer": ("a_viewer", "a"),
    "writer": ("a_owner", "a"),
    "holder": ("a_holder", "a"),
}


def _page_marks(route, method, actor):
    reason = KNOWN.get((f"{method} {route}", actor))
    return [pytest.mark.xfail(strict=True, raises=AssertionError, reason=reason)] if reason else []


PAGE_CASES = [
    pytest.param(route, method, actor, id=f"{method} {route} as {actor}",
                 marks=_page_marks(route, method, actor))
    for route in OPERATOR_ROUTES
    for method in ("GET", "POST")
    for actor in PAGE_ACTORS
]


@pytest.mark.parametrize(("route", "method", "actor"), PAGE_CASES)
def test_it_isolates_every_operator_page(world, route, method, actor):
    session, org = PAGE_ACTORS[actor]
    own_slug = world.b.org.slug if org == "b" else None
    if own_slug and "org" not in route.params:
        pytest.skip("no organisation in the URL: the same request as the intruder's")
    prepared = prepare(lambda: sweep.page_request(route, world.a, org_slug=own_slug))
    form = prepare(lambda: sweep.page_form(route, world.a)) if method == "POST" else None
    only_form_names_a = own_slug and not prepared.path_names_victim
    names_nothing = only_form_names_a and not (
        sweep.mentions_victim(prepared.query) or sweep.mentions_victim(form)
    )
    if names_nothing and (method == "POST" or actor == "dual_member_own_org"):
        pytest.skip("B's own page, naming nothing of A's: B may write there")
    client = sweep.session_client(world.sessions[session])
    request_id = f"{method} {route}"
    outcome = perform(lambda: sweep.send_page(client, method, prepared, form), request_id)
    not_allowed = 405 in WRITER_REFUSED.get(request_id, ((),))[0]  # the page takes no such method

    if actor == "holder":
        # A mailbox holder's session is not an operator's: sent to the operators' sign-in.
        assert outcome.status == 302, outcome.explain("302 to the sign-in page")
        assert outcome.response["Location"].startswith("/accounts/login/")
        outcome.assert_unchanged()
    elif route.name in STAFF_ONLY:
        assert_staff_only(outcome, actor)
        if actor == "writer":
            staff = sweep.session_client(world.sessions["staff"])
            prepared_staff = sweep.page_request(route, world.a)
            sample = perform(lambda: sweep.send_page(staff, method, prepared_staff, form))
            assert_writer_succeeds(request_id, method == "POST", sample)
    elif route.name in BEARER_LINKS:
        if method == "POST":
            assert 400 <= outcome.status < 500, outcome.explain("a refusal (4xx)")
        else:
            assert outcome.status < 500, outcome.explain("not a server error")
        outcome.assert_unchanged()
    elif actor.startswith(("intruder", "dual_member")):
        if names_nothing:
            # B's own page: it shows B's things and nothing of A's.
            assert outcome.status < 500, outcome.explain("not a server error")
        elif only_form_names_a:
            # B's own page, with A's object only in the form or query: never served or written.
            if method == "POST" and route.name not in READ_PAGES:
                assert 400 <= outcome.status < 500, outcome.explain("a refusal (4xx)")
            else:
                assert outcome.status < 500, outcome.explain("not a server error")
        elif prepared.names_victim:
            allowed = {404, 405} if not_allowed else {404}
            assert outcome.status in allowed, outcome.explain("404")
        else:
            assert outcome.status < 500, outcome.explain("not a server error")
        if actor != "dual_member_own_org":  # a viewer of A: seeing A's name is its right
            outcome.assert_no_leak(sweep.sent_strings(prepared, form))
        outcome.assert_unchanged()
    elif actor == "viewer":
        if method == "POST" and route.name not in READ_PAGES:
            allowed = {403, 405} if not_allowed else {403}
            assert outcome.status in allowed, outcome.explain(
                "403 (a page that answers POST like GET and writes nothing goes in READ_PAGES)"
            )
        else:
            assert outcome.status < 500, outcome.explain("not a server error")
        outcome.assert_unchanged()
    else:
        write = method == "POST" and route.name not in READ_PAGES
        assert_writer_succeeds(request_id, write, outcome)


# --- mailbox holder pages -------------------------------------------------------------------

HOLDER_ACTORS = {
    "intruder_holder": "b_holder",
    "operator": "a_owner",
    "holder": "a_holder",
}
HOLDER_CASES = [
    pytest.param(route, method, actor, id=f"{method} {route} as {actor}",
                 marks=_page_marks(route, method, actor))
    for route in HOLDER_ROUTES
    for method in ("GET", "POST")
    for actor in HOLDER_ACTORS
]


@pytest.mark.parametrize(("route", "method", "actor"), HOLDER_CASES)
def test_it_isolates_every_mailbox_holder_page(world, route, method, actor):
    prepared = prepare(lambda: sweep.page_request(route, world.a))
    form = prepare(lambda: sweep.page_form(route, world.a)) if method == "POST" else None
    if actor == "intruder_holder" and form and "current_password" in form:
        form = {**form, "current_password": TEST_PASSWORD}  # B's own password is the same
    client = sweep.session_client(world.sessions[HOLDER_ACTORS[actor]])
    victim_before = sweep.holder_rows(world.a.mailbox)
    outcome = perform(
        lambda: sweep.send_page(client, method, prepared, form), f"{method} {route}"
    )

    if actor == "intruder_holder":
        # Holder B acts on B's own mailbox (its own changes are allowed); A's stays as it was.
        if route.params:
            assert outcome.status == 404, outcome.explain("404")
            outcome.assert_unchanged()
        else:
            assert outcome.status < 500, outcome.explain("not a server error")
        assert sweep.holder_rows(world.a.mailbox) == victim_before, "holder A's data changed"
        outcome.assert_no_leak(sweep.sent_strings(prepared, form))
    elif actor == "operator":
        # An operator's session is not a mailbox holder's: sent to the holders' sign-in.
        assert outcome.status == 302, outcome.explain("302 to the mailbox sign-in")
        assert outcome.response["Location"].startswith("/mailbox/login/")
        outcome.assert_unchanged()
    else:
        write = method == "POST" and route.name not in READ_PAGES
        assert_writer_succeeds(f"{method} {route}", write, outcome)


# --- Django admin: staff only ---------------------------------------------------------------

ADMIN_FILL = {"app_label": "tenants", "url": "anything"}


# GET every admin route; POST those that take a form (the staff check before them is the same).
ADMIN_CASES = [
    pytest.param(route, method, id=f"{method} {route}")
    for route in STAFF_ROUTES
    for method in ("GET", "POST")
    if method == "GET" or re.search(r"(_add|_change|_delete|password_change)$", route.name)
]


@pytest.mark.parametrize(("route", "method"), ADMIN_CASES)
def test_it_keeps_the_django_admin_to_staff(world, route, method):
    """A's owner (not staff) reaches nothing of the admin: it sees every tenant."""
    kwargs = {name: ADMIN_FILL.get(name, world.a.mailbox.pk) for name in route.params}
    path = reverse(route.name, kwargs=kwargs) if route.name else sweep.fill_pattern(
        route.pattern, kwargs
    )
    client = sweep.session_client(world.sessions["a_owner"])
    outcome = perform(lambda: client.generic(method, path))
    if outcome.status == 302:
        assert "login" in outcome.response["Location"], outcome.explain("302 to a sign-in")
    else:
        assert outcome.status in (403, 404), outcome.explain("302 to a sign-in, 403 or 404")
    outcome.assert_no_leak([])
    outcome.assert_unchanged()


def test_it_lets_staff_into_the_django_admin(world):
    """The refusals above are not an admin that is simply broken: staff get in."""
    client = sweep.session_client(world.sessions["staff"])
    response = client.get(reverse("admin:mailboxes_domain_changelist"))
    assert response.status_code == 200
    assert f"{VICTIM}.test" in response.content.decode()


# --- public routes ----------------------------------------------------------------------------


@pytest.mark.parametrize("route", PUBLIC_ROUTES, ids=str)
def test_it_serves_public_routes_without_side_effects(world, route):
    values = {"rest": "no/such/endpoint"}  # the API's catch-all for unknown paths
    for name in route.params:
        if name not in values:
            key = sweep.param_key(route.pattern, name)
            values[name] = prepare(lambda key=key: sweep.param_value(world.a, route.name, key))
    path = sweep.fill_pattern(route.pattern, values)
    outcome = perform(lambda: Client().get(path))
    # 503 is /health saying a part is down (the test node is never applied): an answer.
    assert outcome.status < 500 or outcome.status == 503, outcome.explain("no server error")
    outcome.assert_unchanged()


# --- the sweep covers everything ---------------------------------------------------------------


def test_it_classifies_every_route():
    unclassified = [r.pattern for r in ROUTES if surface(r) is None]
    assert not unclassified, (
        f"routes in no surface: {unclassified}. Add the route to PUBLIC (with the reason it is "
        "public) or its prefix to SURFACES in tests/security/test_isolation_sweep.py"
    )
    stale = set(PUBLIC) - {r.pattern for r in ROUTES}
    assert not stale, f"PUBLIC lists routes that no longer exist: {stale}"


def test_it_sweeps_every_api_route_through_the_schema():
    """Every route under /api/v1/ is an operation of the schema (so the sweep tries it) or a
    listed public one: an endpoint left out of the schema would escape the sweep."""
    documented = {(op.path) for op in OPERATIONS}
    for route in ROUTES:
        if surface(route) != "api":
            continue
        path = "/" + route.pattern.removeprefix("api/v1/")
        path = sweep._PARAM.sub(lambda m: f"{{{m.group(1) or m.group(2)}}}", path)
        assert path in documented, f"{route.pattern} is not in the OpenAPI schema"
    public = {op.id for op in OPERATIONS if op.public}
    assert public == set(PUBLIC_API), (
        f"operations without authentication: {public}; list each in PUBLIC_API with the reason"
    )


def test_it_knows_every_parameter_of_every_route(world):
    unknown = []
    for op in PROTECTED_OPERATIONS:
        try:
            sweep.api_request(world.a, op)
        except sweep.UnknownParameter as exc:
            unknown.append(str(exc))
    for route in OPERATOR_ROUTES + HOLDER_ROUTES:
        try:
            sweep.page_request(route, world.a)
        except sweep.UnknownParameter as exc:
            unknown.append(str(exc))
    assert not unknown, "\n".join(unknown)


def test_it_has_no_stale_entries():
    ids = {op.id for op in OPERATIONS}
    names = {r.name for r in ROUTES}
    assert set(sweep.API_BODIES) <= ids, set(sweep.API_BODIES) - ids
    assert set(sweep.PAGE_FORMS) | set(sweep.PAGE_QUERY) <= names
    requests = ids | {f"{m} {n}" for n in names for m in ("GET", "POST")}
    for table in (WRITER_REFUSED, WRITER_NO_CHANGE, REFUSAL_WRITES):
        assert set(table) <= requests, set(table) - requests
    assert set(STAFF_ONLY) <= ids | names, set(STAFF_ONLY) - (ids | names)
    assert set(PEOPLE_ONLY) <= ids, set(PEOPLE_ONLY) - ids
    assert set(READ_PAGES) | set(BEARER_LINKS) <= names
    assert {k for k, _ in KNOWN} <= requests
