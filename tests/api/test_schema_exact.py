"""What the OpenAPI schema says a request may be is what the API takes (found by schemathesis's
positive and negative data checks; kept here as plain cases)."""

import jsonschema_rs
import pytest

from mailhost.validation import ONE_LINE_PATTERN

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("body", [[], [{"display_name": "x"}], 5, "text", None])
def test_it_refuses_a_body_that_is_not_an_object(tenant, body):
    response = tenant.rw.patch("/mailboxes/alice@acme.test", body)
    assert response.status_code == 422, response.content
    assert response.json()["code"] == "invalid"


@pytest.mark.parametrize("until", ["0.5", "1767225600", "2026-01-31", "2026-01-31T09:00Z",
                                   "2026-01-31T09:00:00"])
def test_it_takes_only_rfc_3339_date_times(tenant, until):
    response = tenant.rw.get("/audit", {"until": until})
    assert response.status_code == 422, response.content
    assert response.json()["field"] == "until"


def test_it_takes_an_rfc_3339_date_time(tenant):
    response = tenant.rw.get("/audit", {"until": "2099-01-31T09:00:00.5+01:00"})
    assert response.status_code == 200, response.content
    assert response.json()["count"] >= 1


def test_it_publishes_a_one_line_pattern_validators_can_use():
    # An invalid pattern (a range of lone surrogates once) is ignored by validators and
    # generators, so the schema silently allowed control characters.
    validator = jsonschema_rs.validator_for({"type": "string", "pattern": ONE_LINE_PATTERN})
    assert validator.is_valid("Anna Berg") and validator.is_valid("אנה ‏ברג")
    for bad in ("a\x86b", "a\nb", "a\x00", "a\u2028b", "a\u202eb"):
        assert not validator.is_valid(bad)


def test_it_bounds_the_history_offset(tenant):
    response = tenant.rw.get("/domains/acme.test/dns/history", {"offset": 2**63})
    assert response.status_code == 422 and response.json()["field"] == "offset"


@pytest.mark.parametrize(("quota", "status"), [(300.0, 200), (300, 200), (300.5, 422),
                                               (True, 422), ("300", 422)])
def test_it_takes_integers_as_json_schema_means_them(tenant, quota, status):
    response = tenant.rw.patch("/mailboxes/alice@acme.test", {"quota_mb": quota})
    assert response.status_code == status, response.content
    if status == 200:
        assert response.json()["quota_mb"] == 300


def test_it_refuses_null_for_an_inbound_switch(tenant):
    response = tenant.rw.patch("/domains/acme.test/inbound", {"greylisting": None})
    assert response.status_code == 422 and response.json()["field"] == "greylisting"
    assert tenant.rw.patch("/domains/acme.test/inbound", {"greylisting": False}).status_code == 200


@pytest.mark.parametrize("score", [0, -1, 1000.5])
def test_it_documents_the_score_range_it_enforces(tenant, openapi_schema, score):
    field = openapi_schema["components"]["schemas"]["InboundIn"]["properties"]["junk_score"]
    bounds = field["anyOf"][0]
    assert (bounds["exclusiveMinimum"], bounds["maximum"]) == (0, 1000)
    response = tenant.rw.patch("/domains/acme.test/inbound", {"junk_score": score})
    assert response.status_code == 422 and response.json()["field"] == "junk_score"


@pytest.fixture
def openapi_schema(anonymous):
    return anonymous.get("/openapi.json").json()
