"""Schemathesis against the live OpenAPI schema, in-process through the WSGI application.

Every operation is fuzzed twice: with generated path parameters (mostly "not found"), and with
path parameters naming real objects so generated bodies reach the services. The checks: no 5xx,
every status documented, responses matching their schema and content type.
"""

from contextlib import contextmanager

import pytest
import schemathesis
from django.core import signals
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from django.test import override_settings
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tenants.models import ApiToken

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
EXAMPLES = 8


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
            strategies = [operation.as_strategy()]
            if known:
                strategies.append(operation.as_strategy(path_parameters=known))
            try:
                for strategy in strategies:
                    _fuzz(strategy, headers, rw_token)
            except (Exception, FailureGroup) as exc:  # try every operation, report them all
                failures[operation.label] = _describe(exc)
            tested.append(operation.label)
    assert len(tested) >= 25
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
        case.call_and_validate(headers=headers, checks=CHECKS)
        # A generated id may name the token doing the testing; keep it usable for the rest.
        ApiToken.objects.filter(pk=rw_token.pk).update(revoked_at=None)

    run()
