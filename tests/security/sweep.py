"""The tenant-isolation sweep's machinery: every route and API operation, organisation A's
objects to name in them, the actors who try, and a snapshot of every table.

Routes come from Django's URL resolver and operations from the OpenAPI schema at
/api/v1/openapi.json, so a page or endpoint is swept from the moment it exists. What cannot
be guessed from a route is written in tables keyed by name:

- PATH_PARAMS: what to put in each path parameter, keyed by the segment before it and its
  name ("domains/<name>", "tokens/<pk>"). A route with a parameter this table does not know
  FAILS the sweep, naming the line to add.
- QUERY_PARAMS: each API query parameter: A's value, or None for a filter that names no object.
- API_BODIES and PAGE_FORMS: a valid request body (API) or form (pages) for each write, so a
  write that skipped its access check would really happen, and the writer's sample proves it.

Organisation A is "victim" (victim.test, alice@victim.test, ...); organisation B is
"intruder". Every name of A's contains VICTIM, so a response to B can be searched for a leak.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from django.apps import apps
from django.db import connection
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone

from bans.node import node_store
from identity.models import InboundSenderRule
from identity.services import dkim_rotate_start
from mailboxes.models import AppPassword, MailboxImport
from mailboxes.services import domain_create
from mailhost.crypto import encrypt
from reports.services import report_submit
from tenants.access import SYSTEM
from tenants.models import Membership
from tenants.services import api_token_create, invitation_create
from tests.factories import (
    TEST_PASSWORD,
    AliasFactory,
    AppPasswordFactory,
    DomainFactory,
    MailboxFactory,
    MembershipFactory,
    OrganisationFactory,
)
from tests.reports.corpus import aggregate as report_xml
from tests.reports.corpus import fixture as report_fixture

VICTIM = "victim"
API_PREFIX = "/api/v1"
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
GOOD_SVG = Path(__file__).resolve().parent.parent / "identity" / "svg" / "good.svg"


# --- the two organisations -------------------------------------------------------------------


@dataclass
class World:
    """One organisation with one of everything a route can name, and its people."""

    org: object
    owner: object  # the writer of the pages: owners may do everything
    viewer: object
    domain: object  # created by the service: it has a DKIM key and a posture
    empty_domain: object  # deletable
    mailbox: object  # the mailbox holder, password TEST_PASSWORD
    deleted_mailbox: object  # restorable
    suspended_mailbox: object  # resumable
    alias: object
    app_password: object
    spare_token: object  # a token to look at and revoke
    member: object  # a viewer's membership to change and remove
    invitation: object
    invitation_token: str
    import_job: object
    rw_token: str  # raw secrets of a read-write and a read-only token
    ro_token: str


def build_world(name: str) -> World:
    org = OrganisationFactory(slug=name, name=f"{name.title()} Ltd")
    domain = domain_create(actor=SYSTEM, organisation=org, name=f"{name}.test")
    mailbox = MailboxFactory(domain=domain, local_part="alice", display_name="Alice")
    invitation, invitation_token = invitation_create(
        actor=SYSTEM, organisation=org, email=f"invitee@{name}.test", role="admin"
    )
    _seed_reports(domain)
    generated = json.dumps([[f"new@{name}.test", "generated password 1"]]).encode()
    return World(
        org=org,
        owner=MembershipFactory(organisation=org, role="owner").user,
        viewer=MembershipFactory(organisation=org, role="viewer").user,
        domain=domain,
        empty_domain=DomainFactory(organisation=org, name=f"empty.{name}.test"),
        mailbox=mailbox,
        deleted_mailbox=MailboxFactory(
            domain=domain, local_part="gone", deleted_at=timezone.now()
        ),
        suspended_mailbox=MailboxFactory(domain=domain, local_part="resting", status="suspended"),
        alias=AliasFactory(domain=domain, local_part="sales", destinations=[mailbox.address]),
        app_password=AppPasswordFactory(mailbox=mailbox, name="Alice's phone"),
        spare_token=api_token_create(actor=SYSTEM, organisation=org, name="spare")[0],
        member=MembershipFactory(organisation=org, role="viewer"),
        invitation=invitation,
        invitation_token=invitation_token,
        import_job=MailboxImport.objects.create(
            organisation=org, filename="staff.csv", status="done", total=1, processed=1,
            created=1, generated_encrypted=encrypt(generated),
        ),
        rw_token=api_token_create(actor=SYSTEM, organisation=org, name="rw")[1],
        ro_token=api_token_create(actor=SYSTEM, organisation=org, name="ro", read_only=True)[1],
    )


def _seed_reports(domain) -> None:
    """A DMARC aggregate, a TLS and a failure report of the domain, each naming it (and so
    VICTIM for organisation A): a route that leaked them would show it."""
    name = domain.name.encode()
    for data in (
        report_xml(domain=domain.name, report_id=f"seed-{domain.name}"),
        report_fixture("tlsrpt-rfc8460.json").replace(b"company-y.example", name),
        report_fixture("failure-rfc6591.eml").replace(b"example.com", name),
    ):
        (result,) = report_submit(actor=SYSTEM, stream=io.BytesIO(data), source="mail")
        assert result.outcome == "accepted", result.reason


# --- what goes into a route: keyed by name ------------------------------------------------------

# "<segment>/<parameter>": A's object for that parameter. Add a line for every new kind of
# object a URL names; the callable may build the object with a factory (it runs inside the
# test's transaction, which is rolled back).
PATH_PARAMS: dict[str, Callable[[World], object]] = {
    "mail-admin/<org>": lambda a: a.org.slug,
    "domains/<name>": lambda a: a.domain.name,
    "mailboxes/<address>": lambda a: a.mailbox.address,
    "aliases/<address>": lambda a: a.alias.address,
    "members/<pk>": lambda a: a.member.pk,
    "invitations/<pk>": lambda a: a.invitation.pk,
    "invitations/<token>": lambda a: a.invitation_token,
    "tokens/<pk>": lambda a: a.spare_token.pk,
    "tokens/<token_id>": lambda a: a.spare_token.pk,
    "import/<pk>": lambda a: a.import_job.pk,
    "app-passwords/<pk>": lambda a: a.app_password.pk,
    # A key in rotation (pending): retiring it is allowed, so the writer's sample succeeds.
    "dkim/<selector>": lambda a: dkim_rotate_start(actor=SYSTEM, domain=a.domain)[0].selector,
    "bimi/<name>": lambda a: a.domain.name,
    "bans/<ip>": lambda a: ban_on(a.mailbox.address),
    # An inbound sender rule of A's domain (pages: <pk>, API: <rule_id>).
    "senders/<pk>": lambda a: sender_rule(a),
    "senders/<rule_id>": lambda a: sender_rule(a),
    "organisations/<slug>": lambda a: a.org.slug,
    # The outbound channel (delivery/): a sent message (API and page), a suppression, an
    # application sender.
    "messages/<message_id>": lambda a: sent_message(a).id.hex,
    "sent/<message_id>": lambda a: sent_message(a).id.hex,
    "suppressions/<value>": lambda a: suppressed(a).value,
    "app-senders/<login>": lambda a: app_sender(a).login,
    "webhooks/<webhook_id>": lambda a: webhook(a).pk,
    "webhook-deliveries/<delivery_id>": lambda a: webhook_delivery(a).pk,
    # Outbound TLS policies (routing/, staff only): one for A's domain name (API and page).
    "tls-policies/<domain>": lambda a: tls_policy(a).domain,
    "tls/<domain>": lambda a: tls_policy(a).domain,
    # Outbound routes (routing/): a relay; a queued message and an action on it. The sweep
    # runs no node, so A's queue is empty: the queue id names nothing anyone may act on
    # (tests/routing/test_queue.py acts on real messages, and B's refusal of A's).
    "relays/<relay_id>": lambda a: relay(a).pk,
    "queue/<queue_id>": lambda a: f"{VICTIM.upper()}0001",
    "{queue_id}/<action>": lambda a: "hold",
    "<str:queue_id>/<action>": lambda a: "hold",
}


def tls_policy(a: World):
    from routing.models import TlsPolicy

    return TlsPolicy.objects.get_or_create(domain=a.domain.name, defaults={"level": "secure"})[0]


def relay(a: World):
    from routing.models import Relay

    # On loopback, which relays may not use: the test action is refused (422) at once
    # instead of reaching out; tests/pages/test_relays.py tests against a fake relay.
    return Relay.objects.get_or_create(
        organisation=a.org, domain=a.domain,
        defaults={"host": "127.0.0.1", "port": 2525, "username": "victim-relay",
                  "password_encrypted": encrypt(b"victim-relay-password")})[0]


def sent_message(a: World):
    from delivery.models import Message, Recipient

    message, created = Message.objects.get_or_create(
        organisation=a.org, idempotency_key="sweep",
        defaults={"domain": a.domain, "sender": a.mailbox.address, "subject": "Victim's news",
                  "message_id": f"<sweep@{a.domain.name}>", "size": 100},
    )
    if created:
        Recipient.objects.create(message=message, address=f"reader@{a.domain.name}", kind="to")
    return message


def suppressed(a: World):
    from delivery.models import Suppression

    return Suppression.objects.get_or_create(
        organisation=a.org, value=f"gone@{a.domain.name}",
        defaults={"scope": "address", "reason": "manual"})[0]


def app_sender(a: World):
    from delivery.models import ApplicationSender

    return ApplicationSender.objects.get_or_create(
        organisation=a.org, login=f"app-{a.org.slug}",
        defaults={"name": "Victim's alerts", "password_hash": "{BLF-CRYPT}x",
                  "addresses": [f"alerts@{a.domain.name}"]})[0]


def webhook(a: World):
    from delivery.models import Webhook

    return Webhook.objects.get_or_create(
        organisation=a.org, url="https://93.184.215.14/victim",
        defaults={"secret": encrypt(b"whsec_victim")})[0]


def webhook_delivery(a: World):
    from delivery.models import DeliveryEvent, WebhookDelivery

    event, _ = DeliveryEvent.objects.get_or_create(
        node_name="sweep", node_event_id=1,
        defaults={"message": sent_message(a), "recipient": f"reader@{a.domain.name}",
                  "status": "bounced", "at": timezone.now(), "source": "log"})
    return WebhookDelivery.objects.get_or_create(
        webhook=webhook(a), event=event,
        defaults={"payload": {"id": f"evt_{event.pk}", "type": "message.bounced"},
                  "state": "dead", "attempts": 8})[0]


def sender_rule(a: World) -> int:
    rule, _ = InboundSenderRule.objects.get_or_create(
        domain=a.domain, mailbox="", sender="@spam.example", defaults={"kind": "block"}
    )
    return rule.pk


def ban_on(account: str, ip: str = "192.0.2.77") -> str:
    """A ban in the node's store earned by failed logins on `account` (A's, so A may see it)."""
    store = node_store()
    while store.ban(ip) is None:
        store.record_failure(ip=ip, account=account, service="imap")
    return ip

# Where one route needs a different object of the same kind than PATH_PARAMS gives (keyed by
# URL name for pages, "METHOD /path" for the API).
PARAM_OVERRIDES: dict[str, dict[str, Callable[[World], object]]] = {
    "mailboxes:mailbox_restore": {"mailboxes/<address>": lambda a: a.deleted_mailbox.address},
    "POST /mailboxes/{address}/restore": {
        "mailboxes/<address>": lambda a: a.deleted_mailbox.address
    },
    "POST /mailboxes/{address}/resume": {
        "mailboxes/<address>": lambda a: a.suspended_mailbox.address
    },
    # The sample domain holds mailboxes, so deleting it is refused: delete an empty one.
    "mailboxes:domain_delete": {"domains/<name>": lambda a: a.empty_domain.name},
    "DELETE /domains/{name}": {"domains/<name>": lambda a: a.empty_domain.name},
}

# Every API query parameter: A's value for one that names an object, None for a filter or
# page parameter that names none (left unset).
QUERY_PARAMS: dict[str, Callable[[World], object] | None] = {
    "organisation": lambda a: a.org.slug,
    "domain": lambda a: a.domain.name,
    "limit": None,
    "offset": None,
    "cursor": None,  # a position in the caller's own list: rows of other tenants are never in it
    "status": None,
    "search": None,
    "include_deleted": None,
    "include_revoked": None,
    "suspended": None,
    "action": None,
    "target": None,
    "actor": None,
    "since": None,
    "until": None,
    "key": None,
    "recipient": None,
    "queue": None,
    "tag": None,
    "webhook": lambda a: webhook(a).pk,
    "state": None,
}


@dataclass(frozen=True)
class Multipart:
    """A multipart/form-data body (file uploads) instead of JSON."""

    fields: dict


def _report_upload(a: World) -> Multipart:
    from django.core.files.uploadedfile import SimpleUploadedFile

    data = report_xml(domain=a.domain.name, report_id=f"sweep-{VICTIM}")
    return Multipart({"file": SimpleUploadedFile("report.xml", data, "text/xml")})


def _svg_upload(field_name: str):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return {field_name: SimpleUploadedFile("logo.svg", GOOD_SVG.read_bytes(), "image/svg+xml")}


# "METHOD /path" → a valid body naming A's objects. Needed for every operation that takes one.
API_BODIES: dict[str, Callable[[World], object]] = {
    "POST /staff/organisations": lambda a: {"slug": f"{a.org.slug}-two", "name": "Sweep Two"},
    "POST /staff/organisations/{slug}/invitations": lambda a: {
        "email": f"sweep-invitee@{a.domain.name}", "role": "admin"
    },
    "POST /tokens": lambda a: {"name": "sweep", "organisation": a.org.slug},
    "POST /domains": lambda a: {"name": f"new.{a.org.slug}.test", "organisation": a.org.slug},
    "PATCH /domains/{name}": lambda a: {"status": "disabled"},
    "POST /mailboxes": lambda a: {"address": f"sweep@{a.domain.name}"},
    "POST /mailboxes/bulk": lambda a: {
        "mailboxes": [{"address": f"sweep@{a.domain.name}"}], "organisation": a.org.slug
    },
    "PATCH /mailboxes/{address}": lambda a: {"display_name": "Renamed by the sweep"},
    "POST /mailboxes/{address}/password": lambda a: {},
    "POST /aliases": lambda a: {
        "address": f"sweep@{a.domain.name}", "destinations": [a.mailbox.address]
    },
    "PATCH /aliases/{address}": lambda a: {"destinations": ["elsewhere@example.net"]},
    "PATCH /domains/{name}/dns/settings": lambda a: {"dmarc_adkim": "s"},
    "POST /domains/{name}/dkim/advance": lambda a: {"force": True},
    "PUT /domains/{name}/dmarc": lambda a: {"policy": "none", "pct": 50},
    "PUT /domains/{name}/mta-sts": lambda a: {"mode": "testing"},
    "POST /domains/{name}/bimi": lambda a: Multipart(_svg_upload("logo")),
    "POST /reports": _report_upload,
    "PATCH /domains/{name}/inbound": lambda a: {"require_spf": True, "junk_score": 7},
    "POST /domains/{name}/inbound/senders": lambda a: {
        "kind": "allow", "sender": "friend@example.net", "mailbox": a.mailbox.address
    },
    "POST /messages": lambda a: {
        "from": a.mailbox.address, "to": ["sweep@victim.invalid"], "subject": "Sweep",
        "text": "Sweep.",
    },
    # Any address may be suppressed (an organisation's own list): none of A's objects.
    "POST /suppressions": lambda a: {"value": "sweep@example.net"},
    "POST /app-senders": lambda a: {"name": "sweep", "addresses": [f"sweep@{a.domain.name}"]},
    "PUT /staff/organisations/{slug}/sending-quota": lambda a: {"hourly": 10},
    "PUT /staff/organisations/{slug}/encryption": lambda a: {"enabled": True},
    "POST /staff/domains/{name}/move": lambda a: {"node": "local"},
    "POST /webhooks": lambda a: {"url": "https://93.184.215.14/sweep"},
    "POST /staff/tls-policies": lambda a: {"domain": f"partner.{a.domain.name}",
                                           "level": "dane-only"},
    "PUT /domains/{name}/relay": lambda a: {"host": "93.184.215.14", "port": 587},
    "PUT /relays/organisation": lambda a: {"host": "93.184.215.14", "port": 587},
    "POST /relays/{relay_id}/test": lambda a: {"to": "sweep@example.net"},
}

# URL name → a valid form for a POST to that page (pages without one are posted empty:
# the confirm-then-POST pages take no fields).
PAGE_FORMS: dict[str, Callable[[World], dict]] = {
    "routing:tls": lambda a: {"domain": f"partner.{a.domain.name}", "level": "secure",
                              "note": ""},
    "tenants:organisation_new": lambda a: {
        "name": "Sweep Two", "slug": f"{a.org.slug}-two", "admin_email": "", "admin_role": "owner"
    },
    "mailboxes:domain_add": lambda a: {
        "name": f"new.{a.org.slug}.test", "default_quota_mb": "1024", "max_mailboxes": ""
    },
    "mailboxes:domain_edit": lambda a: {
        "status": "disabled", "max_mailboxes": "", "default_quota_mb": "512"
    },
    "mailboxes:mailbox_new": lambda a: {
        "local_part": "sweep", "domain": a.domain.name, "display_name": "", "quota_mb": "100",
        "password": "a long sweep password",
    },
    "mailboxes:mailbox": lambda a: {"display_name": "Renamed by the sweep", "quota_mb": "100"},
    "mailboxes:mailbox_password": lambda a: {"password": "another long password"},
    "mailboxes:mailbox_status": lambda a: {"status": "suspended", "confirmed": "1"},
    "mailboxes:import_new": lambda a: {"file": _csv_upload(a)},
    "mailboxes:alias_new": lambda a: {
        "local_part": "sweep", "domain": a.domain.name, "destinations": a.mailbox.address
    },
    "mailboxes:alias": lambda a: {"destinations": "elsewhere@example.net", "active": "on"},
    "mailboxes:dmarc": lambda a: {"policy": "none", "pct": "50"},
    "mailboxes:bimi": lambda a: _svg_upload("logo"),
    "reports:submissions": lambda a: {"file": _report_upload(a).fields["file"]},
    "mailboxes:mtasts": lambda a: {"mode": "testing"},
    "mailboxes:inbound": lambda a: {"require_dmarc": "on", "greylisting": "on",
                                    "junk_score": "7", "reject_score": ""},
    "mailboxes:inbound_sender_add": lambda a: {"kind": "block", "sender": "@bad.example",
                                               "mailbox": ""},
    "tenants:members": lambda a: {"email": "newcomer@operators.test", "role": "viewer"},
    "tenants:member_role": lambda a: {"role": "admin"},
    "tenants:encryption": lambda a: {"enabled": "on"},
    "mailboxes:domain_move": lambda a: {"node": "local", "confirmed": "1"},
    "tenants:tokens": lambda a: {"name": "sweep", "expires_in_days": ""},
    "mailbox:password": lambda a: {
        "current_password": TEST_PASSWORD, "new_password": "a brand new password",
        "confirm_password": "a brand new password",
    },
    "mailbox:forwarding": lambda a: {"forward_to": "elsewhere@example.net", "keep_copy": "on"},
    "mailbox:vacation": lambda a: {"enabled": "on", "subject": "Away", "body": "Back soon."},
    "mailbox:app_passwords": lambda a: {"name": "Sweep tablet"},
    "delivery:suppressions": lambda a: {"value": "sweep@example.net"},
    "delivery:webhooks": lambda a: {"url": "https://93.184.215.14/sweep"},
    "routing:relays": lambda a: {"domain": a.domain.name, "host": "93.184.215.14",
                                 "port": "587", "tls_mode": "required"},
    "routing:relay_test": lambda a: {"to": "sweep@example.net"},
}

# URL name → the query string a page needs (a page that takes a filter naming an object).
PAGE_QUERY: dict[str, Callable[[World], dict]] = {
    "tenants:switch": lambda a: {"org": a.org.slug},
    "mailboxes:mailboxes": lambda a: {"domain": a.domain.name},
    "mailboxes:mailbox_new": lambda a: {"domain": a.domain.name},
    "mailboxes:alias_new": lambda a: {"domain": a.domain.name},
    "mailboxes:mailbox_status": lambda a: {"status": "suspended"},
    "backups:start": lambda a: {"scope": f"organisation:{a.org.slug}"},
}


def _csv_upload(a: World):
    from django.core.files.uploadedfile import SimpleUploadedFile

    body = f"address,display_name\nimported@{a.domain.name},Imported\n".encode()
    return SimpleUploadedFile("mailboxes.csv", body, "text/csv")


class UnknownParameter(LookupError):
    """A route names something the tables above do not know: the sweep cannot cover it."""


def param_key(template: str, name: str) -> str:
    """The PATH_PARAMS key of parameter `name` in a route or OpenAPI path template."""
    segments = [s for s in template.strip("/").split("/") if s]
    for i, segment in enumerate(segments):
        if segment in (f"{{{name}}}", f"<{name}>") or re.fullmatch(rf"<\w+:{name}>", segment):
            before = segments[i - 1] if i else ""
            return f"{before}/<{name}>"
    raise ValueError(f"{name} is not a parameter of {template}")


def param_value(world: World, route_id: str, key: str) -> object:
    override = PARAM_OVERRIDES.get(route_id, {})
    fill = override.get(key) or PATH_PARAMS.get(key)
    if fill is None:
        raise UnknownParameter(
            f"{route_id}: the sweep does not know the path parameter {key!r}. Add one line to "
            f"PATH_PARAMS in tests/security/sweep.py: {key!r}: lambda a: <organisation A's "
            "object for it, e.g. built with a factory from tests/factories.py>."
        )
    return fill(world)


# --- the URL resolver ----------------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    pattern: str  # the whole route, e.g. "mail-admin/<slug:org>/domains/<str:name>/"
    name: str  # namespaced URL name, e.g. "mailboxes:domain" ("" when unnamed)
    params: tuple[str, ...]

    def __str__(self) -> str:
        return self.name or self.pattern


_PARAM = re.compile(r"<(?:\w+:)?(\w+)>|\(\?P<(\w+)>")


def routes() -> list[Route]:
    """Every URL pattern Django serves, with its namespaced name and parameters."""

    def walk(patterns, prefix: str, namespace: str):
        for entry in patterns:
            pattern = prefix + str(entry.pattern)
            if isinstance(entry, URLResolver):
                inner = namespace
                if entry.namespace:
                    inner = f"{namespace}:{entry.namespace}" if namespace else entry.namespace
                yield from walk(entry.url_patterns, pattern, inner)
            elif isinstance(entry, URLPattern):
                name = entry.name or ""
                if name and namespace:
                    name = f"{namespace}:{name}"
                params = tuple(a or b for a, b in _PARAM.findall(pattern))
                yield Route(pattern=pattern, name=name, params=params)

    return list(walk(get_resolver().url_patterns, "", ""))


def fill_pattern(pattern: str, values: dict) -> str:
    """A path from a route pattern, for routes without a name to reverse."""
    path = re.sub(r"<(?:\w+:)?(\w+)>", lambda m: str(values[m.group(1)]), pattern)
    path = re.sub(r"\(\?P<(\w+)>[^)]*\)", lambda m: str(values[m.group(1)]), path)
    return "/" + path.replace("^", "").replace("\\Z", "").replace("$", "")


# --- the OpenAPI schema --------------------------------------------------------------------


@dataclass(frozen=True)
class Operation:
    method: str
    path: str  # without /api/v1, e.g. "/domains/{name}"
    path_params: tuple[str, ...]
    query_params: tuple[str, ...]
    required_query: tuple[str, ...]
    has_body: bool
    public: bool

    @property
    def id(self) -> str:
        return f"{self.method} {self.path}"

    @property
    def write(self) -> bool:
        return self.method in WRITE_METHODS

    def __str__(self) -> str:
        return self.id


def openapi_schema() -> dict:
    """The schema as served. Read at collection, before the test environment adds the test
    client's host name to ALLOWED_HOSTS, hence the explicit Host."""
    response = Client().get(f"{API_PREFIX}/openapi.json", headers={"host": "localhost"})
    assert response.status_code == 200, (
        f"GET /api/v1/openapi.json answered {response.status_code} "
        f"{response.get('Location', '')} {response.content[:200]!r}"
    )
    return response.json()


def operations(schema: dict) -> list[Operation]:
    found = []
    for path, methods in schema["paths"].items():
        for method, operation in methods.items():
            params = operation.get("parameters", [])
            found.append(
                Operation(
                    method=method.upper(),
                    path=path.removeprefix(API_PREFIX),
                    path_params=tuple(p["name"] for p in params if p["in"] == "path"),
                    query_params=tuple(p["name"] for p in params if p["in"] == "query"),
                    required_query=tuple(
                        p["name"] for p in params if p["in"] == "query" and p.get("required")
                    ),
                    has_body="requestBody" in operation,
                    public=not operation.get("security"),
                )
            )
    return found


# --- building a request that names A's objects --------------------------------------------------


@dataclass
class Prepared:
    path: str
    query: dict = field(default_factory=dict)
    body: object = None
    names_victim: bool = False  # the request names an object of organisation A
    path_names_victim: bool = False  # ... in its path (not only in a query or form)


def mentions_victim(value) -> bool:
    return VICTIM in repr(value)


def sent_strings(prepared: Prepared, form: dict | None = None) -> list[str]:
    """Every string the request itself carried: an answer may echo them without leaking."""
    found = [s for s in prepared.path.split("/") if s]

    def collect(value):
        if isinstance(value, dict):
            for item in value.values():
                collect(item)
        elif isinstance(value, (list, tuple)):
            for item in value:
                collect(item)
        elif isinstance(value, Multipart):
            collect(value.fields)
        elif isinstance(value, (str, int)):
            found.append(str(value))
            found.append(str(value).rpartition("@")[2])  # an address's domain, echoed alone

    collect([prepared.query, prepared.body, form or {}])
    # Longest first, so "sweep@victim.test" goes before "victim.test".
    return sorted({s for s in found if VICTIM in s.lower()}, key=len, reverse=True)


def api_request(world: World, op: Operation) -> Prepared:
    path = op.path
    for name in op.path_params:
        value = param_value(world, op.id, param_key(op.path, name))
        path = path.replace(f"{{{name}}}", quote(str(value), safe="@"))
    query = {}
    for name in op.query_params:
        if name not in QUERY_PARAMS:
            raise UnknownParameter(
                f"{op.id}: the sweep does not know the query parameter {name!r}. Add it to "
                "QUERY_PARAMS in tests/security/sweep.py: lambda a: <organisation A's value> if "
                "it names an object, None if it is only a filter."
            )
        if QUERY_PARAMS[name] is not None:
            query[name] = QUERY_PARAMS[name](world)
    missing = [n for n in op.required_query if n not in query]
    if missing:
        raise UnknownParameter(f"{op.id}: give a value for the required query {missing}.")
    body = None
    if op.has_body:
        if op.id not in API_BODIES:
            raise UnknownParameter(
                f"{op.id} takes a request body the sweep does not know. Add a valid one naming "
                "organisation A's objects to API_BODIES in tests/security/sweep.py."
            )
        body = API_BODIES[op.id](world)
    names = bool(op.path_params) or mentions_victim(query) or mentions_victim(body)
    return Prepared(API_PREFIX + path, query, body, names, bool(op.path_params))


def page_request(route: Route, world: World, *, org_slug: str | None = None) -> Prepared:
    """The route filled with A's objects; `org_slug` puts another organisation in <org>."""
    kwargs = {}
    for name in route.params:
        key = param_key(route.pattern, name)
        if key == "mail-admin/<org>" and org_slug is not None:
            kwargs[name] = org_slug
        else:
            kwargs[name] = param_value(world, route.name, key)
    path = reverse(route.name, kwargs=kwargs)
    query = PAGE_QUERY[route.name](world) if route.name in PAGE_QUERY else {}
    names = any(
        param_key(route.pattern, name) != "mail-admin/<org>" or org_slug is None
        for name in route.params
    )
    return Prepared(path, query, None, names or mentions_victim(query), names)


def page_form(route: Route, world: World) -> dict:
    return PAGE_FORMS[route.name](world) if route.name in PAGE_FORMS else {}


# --- sending --------------------------------------------------------------------------------


def session_client(session_key: str | None) -> Client:
    """A fresh test client on an existing session: a request that cycles or ends its session
    (a logout, a password change) cannot spoil the next test's actor."""
    from django.conf import settings

    client = Client()
    if session_key:
        client.cookies[settings.SESSION_COOKIE_NAME] = session_key
    return client


def send_api(client: Client, method: str, prepared: Prepared, token: str | None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    path = prepared.path
    if prepared.query:
        from urllib.parse import urlencode

        path = f"{path}?{urlencode(prepared.query)}"
    if isinstance(prepared.body, Multipart):
        return client.post(path, prepared.body.fields, headers=headers)
    data = json.dumps(prepared.body) if prepared.body is not None else ""
    return client.generic(method, path, data, content_type="application/json", headers=headers)


def send_page(client: Client, method: str, prepared: Prepared, form: dict | None = None):
    if method == "GET":
        return client.get(prepared.path, prepared.query)
    path = prepared.path
    if prepared.query:
        from urllib.parse import urlencode

        path = f"{path}?{urlencode(prepared.query)}"
    return client.post(path, form or {})


# --- the state a refused request must not change ------------------------------------------------

# Tables that are not tenant state: the actors' own sessions, and Django's fixed catalogues.
NOT_STATE = {
    "sessions.Session": "each actor's own sign-in; a request may touch its session",
    "contenttypes.ContentType": "Django's catalogue of models",
    "auth.Permission": "Django's catalogue of permissions",
}
# Columns a read may legitimately write: when a user or token was last used.
VOLATILE = {"auth.User": ("last_login",), "tenants.ApiToken": ("last_used_at",)}


# State kept outside the database (a node-local store, Redis): name → a callable returning a
# comparable value of it. A feature that keeps tenant state elsewhere adds a line here.
def _bans() -> list:
    return [(ban.ip, ban.accounts) for ban in node_store().bans()]


# State kept outside the database that a request may change (name → reader).
EXTRA_STATE: dict[str, Callable[[], object]] = {"node ban store": _bans}


def state_models() -> list:
    return [
        model
        for model in apps.get_models()
        if model._meta.label not in NOT_STATE and model._meta.managed and not model._meta.proxy
    ]


def _row_sql(model) -> str:
    qn = connection.ops.quote_name
    drop = "".join(f" - '{column}'" for column in VOLATILE.get(model._meta.label, ()))
    return f"SELECT (to_jsonb(t){drop})::text AS r FROM {qn(model._meta.db_table)} t"


def snapshot() -> dict[str, str]:
    """A digest of every table's rows (one query): equal digests, unchanged state."""
    parts = [
        f"SELECT '{m._meta.label}', md5(coalesce(string_agg(r, '|' ORDER BY r), '')) "
        f"FROM ({_row_sql(m)}) s{i}"
        for i, m in enumerate(state_models())
    ]
    with connection.cursor() as cursor:
        cursor.execute(" UNION ALL ".join(parts))
        digests = dict(cursor.fetchall())
    return digests | {name: str(read()) for name, read in EXTRA_STATE.items()}


def describe_change(before: dict[str, str], after: dict[str, str]) -> str:
    """Which tables changed, with their rows now: what the failure message shows."""
    changed = sorted(label for label in after if before.get(label) != after[label])
    lines = [f"{name} changed: {after[name][:300]}" for name in changed if name in EXTRA_STATE]
    with connection.cursor() as cursor:
        for label in (c for c in changed if c not in EXTRA_STATE):
            model = apps.get_model(label)
            pk = connection.ops.quote_name(model._meta.pk.column)
            rows_sql = _row_sql(model).replace("::text AS r FROM", f"::text AS r, t.{pk} AS k FROM")
            cursor.execute(f"SELECT r FROM ({rows_sql}) s ORDER BY k DESC LIMIT 5")
            rows = [row[0][:300] for row in cursor.fetchall()]
            lines.append(f"{label} changed; now (up to 5 rows): " + "\n    ".join(["", *rows]))
    return "\n".join(lines)


def holder_rows(mailbox) -> tuple:
    """Everything of one mailbox holder's that another holder might try to change."""
    from mailboxes.models import Mailbox

    row = Mailbox.objects.filter(pk=mailbox.pk).values().first()
    app_passwords = list(AppPassword.objects.filter(mailbox=mailbox).order_by("pk").values())
    return row, app_passwords


def membership_count(org) -> int:
    return Membership.objects.filter(organisation=org).count()
