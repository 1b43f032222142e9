"""The DNS routes of /api/v1/: it works, another tenant gets 404, a viewer 403, bad input 422."""

from pathlib import Path

import pytest

from identity.services import dkim_rotate_start
from mailboxes.services import domain_create
from tenants.access import SYSTEM
from tenants.models import AuditEvent
from tests.factories import OrganisationFactory
from tests.identity.support import MAIL_HOST, api_for, fragment_for

pytestmark = pytest.mark.django_db

SVG = Path(__file__).parent / "svg"
RECORD_FIELDS = {
    "key",
    "name",
    "type",
    "value",
    "purpose",
    "status",
    "detail",
    "found",
    "checked_at",
}


@pytest.fixture
def rw(domain, organisation):
    return api_for(organisation)


@pytest.fixture
def ro(domain, organisation):
    return api_for(organisation, read_only=True)


@pytest.fixture
def stranger(mail_settings):
    other = OrganisationFactory(slug="globex")
    domain_create(actor=SYSTEM, organisation=other, name="globex.test")
    return api_for(other)


def test_it_lists_the_record_set_with_purposes_and_verdicts(rw, django_assert_max_num_queries):
    # 10, one for the DMARC advice's reading of the domain's reports (reports.figures), and
    # one for the SPF include of the relay the domain's mail leaves by (routing.selectors).
    with django_assert_max_num_queries(12):
        response = rw.get("/domains/good.test/dns")
    assert response.status_code == 200
    body = response.json()
    assert body["domain"] == "good.test"
    assert all(set(record) >= RECORD_FIELDS for record in body["records"])
    mx = next(r for r in body["records"] if r["key"] == "mx")
    assert (mx["name"], mx["type"], mx["value"]) == ("good.test", "MX", f"10 {MAIL_HOST}.")
    assert (mx["status"], mx["checked_at"]) == (None, None)
    assert body["dmarc"]["next_step"] == {"policy": "quarantine", "pct": 25}
    assert body["dmarc"]["blocked_by"] == [
        "SPF has not been checked yet.",
        f"DKIM {body['dkim_keys'][0]['selector']} has not been checked yet.",
    ]
    assert body["mta_sts"]["policy_url"] == "https://mta-sts.good.test/.well-known/mta-sts.txt"
    assert body["publishing"]["tsig_secret_set"] is False


def test_it_keeps_the_query_count_flat_as_keys_accumulate(
    rw, domain, django_assert_max_num_queries
):
    from identity.services import dkim_retire

    for _ in range(5):
        (key,) = dkim_rotate_start(actor=SYSTEM, domain=domain)
        dkim_retire(actor=SYSTEM, domain=domain, selector=key.selector)
    # 10, one for the DMARC advice's reading of the domain's reports (reports.figures), and
    # one for the SPF include of the relay the domain's mail leaves by (routing.selectors).
    with django_assert_max_num_queries(12):
        assert rw.get("/domains/good.test/dns").status_code == 200


def test_it_gives_the_zone_fragment_as_text(rw, domain):
    response = rw.get("/domains/good.test/dns/zone")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    assert response.content.decode() == fragment_for(domain).replace(" 300 IN ", " 3600 IN ")


def test_it_hides_another_tenants_domain(stranger, rw):
    for path in (
        "/domains/good.test/dns",
        "/domains/good.test/dns/zone",
        "/domains/good.test/dns/history",
    ):
        response = stranger.get(path)
        assert response.status_code == 404, path
        assert response.json()["code"] == "not_found"
    assert stranger.send("POST", "/domains/good.test/dkim/rotate").status_code == 404
    assert stranger.send("PUT", "/domains/good.test/dmarc", {"policy": "reject"}).status_code == 404


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/domains/good.test/dkim/rotate", None),
        ("POST", "/domains/good.test/dkim/advance", {"force": True}),
        ("PUT", "/domains/good.test/dmarc", {"policy": "reject", "force": True}),
        ("PUT", "/domains/good.test/mta-sts", {"mode": "enforce"}),
        ("PATCH", "/domains/good.test/dns/settings", {"dmarc_adkim": "s"}),
        ("POST", "/domains/good.test/dns/publish", None),
        ("POST", "/domains/good.test/dns/check", None),  # writes history, rotates, mails
        ("DELETE", "/domains/good.test/bimi", None),
    ],
)
def test_it_forbids_writes_to_a_read_only_token(ro, method, path, body):
    response = ro.send(method, path, body)
    assert response.status_code == 403
    assert response.json()["code"] == "forbidden"
    assert not AuditEvent.objects.exclude(action__in=["api_token.create", "domain.create"]).exists()


def test_it_lets_a_read_only_token_read(ro):
    assert ro.get("/domains/good.test/dns").status_code == 200
    assert ro.get("/domains/good.test/dns/zone").status_code == 200


def test_it_starts_a_rotation_once(rw):
    response = rw.send("POST", "/domains/good.test/dkim/rotate")
    assert response.status_code == 201
    (key,) = response.json()["keys"]
    assert key["state"] == "pending" and key["algorithm"] == "rsa"
    again = rw.send("POST", "/domains/good.test/dkim/rotate")
    assert again.status_code == 409 and again.json()["code"] == "rotation_in_progress"
    advanced = rw.send("POST", "/domains/good.test/dkim/advance", {"force": True})
    assert advanced.status_code == 200 and len(advanced.json()["steps"]) == 2
    states = {k["selector"]: k["state"] for k in advanced.json()["keys"]}
    assert states[key["selector"]] == "active"


def test_it_refuses_to_tighten_dmarc_while_checks_fail_unless_forced(rw):
    refused = rw.send("PUT", "/domains/good.test/dmarc", {"policy": "quarantine", "pct": 25})
    assert refused.status_code == 409 and refused.json()["code"] == "dns_checks_failing"
    forced = rw.send(
        "PUT", "/domains/good.test/dmarc", {"policy": "quarantine", "pct": 25, "force": True}
    )
    assert forced.status_code == 200
    assert forced.json()["dmarc"]["policy"] == "quarantine"
    assert forced.json()["dmarc"]["next_step"] == {"policy": "quarantine", "pct": 50}
    assert AuditEvent.objects.get(action="dmarc.stage").after["forced"] is True


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        ("PUT", "/domains/good.test/dmarc", {"policy": "block"}, "policy"),
        ("PUT", "/domains/good.test/dmarc", {"policy": "reject", "pct": 0}, "pct"),
        ("PUT", "/domains/good.test/mta-sts", {"mx": ["mx.other.test"]}, "mx"),
        ("PUT", "/domains/good.test/mta-sts", {"max_age": "long"}, "max_age"),
        ("PATCH", "/domains/good.test/dns/settings", {"dmarc_rua": ["nope"]}, "dmarc_rua"),
        ("PATCH", "/domains/good.test/dns/settings", {"auto_publish": True}, "auto_publish"),
    ],
)
def test_it_refuses_bad_input_naming_the_field(rw, method, path, body, field):
    response = rw.send(method, path, body)
    assert response.status_code == 422, response.json()
    assert response.json()["field"] == field


def test_it_stores_settings_and_never_returns_the_tsig_secret(rw):
    response = rw.send(
        "PATCH",
        "/domains/good.test/dns/settings",
        {
            "dmarc_rua": ["postmaster+dmarc@good.test"],
            "dmarc_aspf": "s",
            "tls_rpt_rua": ["https://r.test/x"],
            "publish_server": "127.0.0.1",
            "tsig_key_name": "mailhost",
            "tsig_secret": "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0cw==",
        },
    )
    assert response.status_code == 200
    body = response.json()
    assert body["dmarc"]["rua"] == ["mailto:postmaster+dmarc@good.test"]
    assert body["tls_rpt_rua"] == ["https://r.test/x"]
    assert body["publishing"]["tsig_secret_set"] is True
    assert "c2VjcmV0" not in response.content.decode()
    dmarc = next(r for r in body["records"] if r["key"] == "dmarc")
    assert dmarc["value"] == "v=DMARC1; p=none; rua=mailto:postmaster+dmarc@good.test; aspf=s"


def test_it_uploads_a_logo_and_refuses_a_hostile_one_with_reasons(rw):
    good = rw.upload("/domains/good.test/bimi", (SVG / "good.svg").read_bytes())
    assert good.status_code == 200
    assert good.json()["bimi"]["logo_url"] == (
        "https://portal.provider.test/bimi/good.test/logo.svg"
    )
    assert good.json()["bimi"]["published"] is False  # DMARC does not enforce yet
    bad = rw.upload("/domains/good.test/bimi", (SVG / "script.svg").read_bytes())
    assert bad.status_code == 422
    assert bad.json()["code"] == "svg_rejected" and bad.json()["field"] == "logo"
    assert "<script>" in bad.json()["detail"]
    assert rw.send("DELETE", "/domains/good.test/bimi").status_code == 204
    assert rw.get("/domains/good.test/dns").json()["bimi"]["logo_url"] is None


def test_it_sets_the_mta_sts_policy(rw):
    response = rw.send("PUT", "/domains/good.test/mta-sts", {"mode": "enforce", "max_age": 86400})
    assert response.status_code == 200
    assert response.json()["mta_sts"] | {"id": None} == {
        "mode": "enforce",
        "mx": [MAIL_HOST],
        "max_age": 86400,
        "id": None,
        "policy_url": "https://mta-sts.good.test/.well-known/mta-sts.txt",
    }


@pytest.mark.dns
def test_it_checks_now_and_keeps_the_history(rw, domain, dns_world):
    dns_world({"good.test": fragment_for(domain).replace(f"MX 10 {MAIL_HOST}.", "MX 10 x.test.")})
    response = rw.send("POST", "/domains/good.test/dns/check")
    assert response.status_code == 200
    statuses = {r["key"]: r["status"] for r in response.json()["records"]}
    assert statuses["mx"] == "wrong" and statuses["spf"] == "ok"
    history = rw.get("/domains/good.test/dns/history", {"key": "mx"}).json()
    assert history["count"] == 1
    assert history["items"][0]["found"] == ["10 x.test."]
