"""Schemathesis against the live OpenAPI schema, in-process through the WSGI application.

Every operation is fuzzed four ways: schema-valid and schema-violating input (positive and
negative generation), each with generated path parameters (mostly "not found") and with path
parameters naming real objects so generated bodies reach the services. Every built-in check
runs (the Python API's `--checks all`): no 5xx, every status and response documented, valid
input accepted and invalid input refused, so the schema says exactly what the API takes.

Where validation rests on a rule a JSON Schema cannot state (an e-mail address that parses,
an SVG logo), the schema is necessarily looser: those operations are listed in SEMANTIC with
the rule, and only "valid input accepted" is waived for them. Everything else must hold.

`MAILHOST_SCHEMATHESIS_EXAMPLES` (default 30) sets the examples per operation and way; a
deeper run: `MAILHOST_SCHEMATHESIS_EXAMPLES=200 scripts/test.sh tests/api/test_schemathesis.py`.
"""

import os
import uuid
from contextlib import contextmanager

import pytest
import schemathesis
from django.core import signals
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections, transaction
from django.test import override_settings
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import CHECKS as REGISTERED_CHECKS
from schemathesis.checks import load_all_checks, positive_data_acceptance
from schemathesis.core.failures import FailureGroup
from schemathesis.generation import GenerationMode

from tenants.models import ApiToken

load_all_checks()  # the registry holds only not_a_server_error until this runs
CHECKS = REGISTERED_CHECKS.get_all()
EXAMPLES = int(os.environ.get("MAILHOST_SCHEMATHESIS_EXAMPLES", "30"))

_ADDRESS = "an e-mail address that parses (mailhost.names), not only a bounded one-line string"
# Operation -> the rule its validation adds to the schema (positive_data_acceptance waived).
SEMANTIC = {
    "POST /api/v1/domains": "a domain name that parses, of two labels or more",
    "PATCH /api/v1/domains/{name}": f"role_target: {_ADDRESS}",
    "POST /api/v1/mailboxes": f"address: {_ADDRESS}",
    "POST /api/v1/mailboxes/bulk": f"each address: {_ADDRESS}",
    "GET /api/v1/mailboxes": "cursor: a next_cursor the list gave out (opaque)",
    "PATCH /api/v1/mailboxes/{address}": f"address: {_ADDRESS} in the same domain",
    "POST /api/v1/aliases": f"address and destinations: {_ADDRESS}",
    "PATCH /api/v1/aliases/{address}": f"destinations: {_ADDRESS}",
    "GET /api/v1/bans/{ip}": "an IPv4 or IPv6 address",
    "DELETE /api/v1/bans/{ip}": "an IPv4 or IPv6 address",
    "PATCH /api/v1/domains/{name}/dns/settings": "report URIs, a base64 TSIG secret of 16+ "
    "bytes, a zone that is a domain name",
    "PUT /api/v1/domains/{name}/mta-sts": "mx: host names or *.wildcards",
    "POST /api/v1/domains/{name}/bimi": "logo: a well-formed SVG Tiny PS document",
    "POST /api/v1/domains/{name}/inbound/senders": f"sender: {_ADDRESS}, or @domain",
    "PATCH /api/v1/domains/{name}/inbound": "junk_score below reject_score (either may be "
    "stored already)",
    "GET /api/v1/inbound/flow": "domain: a domain name that parses",
    "POST /api/v1/messages": f"from, to, cc, bcc, reply_to: {_ADDRESS}; from one the "
    "organisation may send as, on a live domain; attachments: base64",
    "POST /api/v1/suppressions": f"value: {_ADDRESS}, or a domain name that parses",
    "DELETE /api/v1/suppressions/{value}": f"value: {_ADDRESS}, or a domain name that parses",
    "POST /api/v1/webhooks": "url: an https URL whose host resolves to public addresses only",
    "POST /api/v1/app-senders": f"addresses: each {_ADDRESS} the organisation may send as",
    "PUT /api/v1/domains/{name}/relay": "host: a host name or IP address on public addresses "
    "only; username and password printable without spaces, both or neither; spf_include: a "
    "domain name",
    "PUT /api/v1/relays/organisation": "host: a host name or IP address on public addresses "
    "only; username and password printable without spaces, both or neither; spf_include: a "
    "domain name",
    "POST /api/v1/relays/{relay_id}/test": f"to: {_ADDRESS}; a relay of the organisation",
    "POST /api/v1/queue/{queue_id}/{action}": "queue_id: a message of the organisation's in "
    "the mail queue",
    "POST /api/v1/reports": "file: a DMARC aggregate report (XML, gzip or zip), an RFC 6591 "
    "failure report or an RFC 8460 TLS report about a hosted domain; anything else is "
    "recorded and refused (422)",
}


@contextmanager
def connections_kept_open():
    """As Django's test client does: the request cycle must not close the test's connection
    (it holds the transaction the test's data lives in)."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)


def known_path_parameters(path: str, tenant) -> dict:
    """Values that name the tenant's real objects, for the parameters this path has."""
    values = {"name": "acme.test", "token_id": tenant.spare_token.pk, "selector": "mh20260101"}
    if path.startswith("/api/v1/aliases/"):
        values["address"] = "info@acme.test"
    elif path.startswith("/api/v1/mailboxes/"):
        values["address"] = "alice@acme.test"
    return {name: value for name, value in values.items() if "{" + name + "}" in path}


@pytest.mark.django_db
# DNS checks go to a closed port on loopback: they fail fast as "unknown" instead of timing out.
@override_settings(MAILHOST_DNS_RESOLVERS=["127.0.0.1@9"], MAILHOST_DNS_LIFETIME_MS=200)
@override_settings(API_RATE_LIMIT=0)  # hundreds of requests a minute from one token
def test_it_finds_no_server_error_and_no_schema_violation(tenant):
    rw_token = ApiToken.objects.get(organisation=tenant.organisation, name="rw")
    headers = {"Authorization": f"Bearer {tenant.rw.token}"}
    tested, failures = [], {}
    with connections_kept_open():
        schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", get_wsgi_application())
        for result in schema.get_all_operations():
            operation = result.ok()
            known = known_path_parameters(operation.path, tenant)
            ways = {}
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                ways[f"{mode.value} input"] = operation.as_strategy(mode)
                if known:
                    ways[f"{mode.value} input, real objects"] = operation.as_strategy(
                        mode, path_parameters=known
                    )
            for way, strategy in ways.items():
                try:
                    _fuzz(strategy, headers, rw_token)
                except Unsatisfiable:
                    continue  # nothing to make invalid (an operation without input)
                except (Exception, FailureGroup) as exc:  # try every operation, report them all
                    failures[f"{operation.label} ({way})"] = _describe(exc)
            tested.append(operation.label)
    assert len(tested) >= 25
    assert set(SEMANTIC) <= set(tested), "SEMANTIC names an operation the API no longer has"
    assert not failures, "\n\n".join(f"{label}:\n{text}" for label, text in failures.items())


def _describe(exc: BaseException) -> str:
    found = getattr(exc, "exceptions", None) or [exc]
    return "\n".join(f"  {getattr(f, 'title', type(f).__name__)}: {f}"[:2000] for f in found)


def _fuzz(strategy, headers, rw_token):
    @given(case=strategy)
    @hypothesis_settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def run(case):
        generated = case.headers or {}
        positive = case.meta.generation.mode.is_positive
        if positive and "Idempotency-Key" in generated:
            # A key used before with another body is refused (422): state, not shape.
            case.headers["Idempotency-Key"] = uuid.uuid4().hex
        # Our token, unless the invalid part of a negative case may be its Authorization.
        auth = {} if not positive and "Authorization" in generated else headers
        # A savepoint per call, as each request has its own transaction in production: a
        # database error one request answered (422) must not poison the next.
        waived = [positive_data_acceptance] if case.operation.label in SEMANTIC else []
        with transaction.atomic():
            case.call_and_validate(headers=auth, checks=CHECKS, excluded_checks=waived)
        # A generated id may name the token doing the testing; keep it usable for the rest.
        ApiToken.objects.filter(pk=rw_token.pk).update(revoked_at=None)

    run()
