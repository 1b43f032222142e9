"""Each check's ok / wrong / unknown, proven against a real authoritative server (Knot)."""

from pathlib import Path

import pytest

from identity.dkim import generate_rsa_key
from identity.records import Record, rdata_text
from identity.services import bimi_upload, dmarc_set_stage
from tenants.access import SYSTEM
from tests.identity.support import (
    IPV4,
    IPV6,
    MAIL_HOST,
    OTHER_IPV4,
    check_now,
    fragment_for,
    http_fetcher,
    portal_fetcher,
)

pytestmark = [pytest.mark.dns, pytest.mark.django_db]

LOGO = (Path(__file__).parent / "svg" / "good.svg").read_bytes()
DOMAIN_KEYS = [
    "mx",
    "spf",
    "dmarc",
    "mta-sts",
    "mta-sts-policy",
    "tls-rpt",
    "bimi",
    "autoconfig",
    "autodiscover",
    "srv:submissions",
    "srv:imaps",
    "srv:autodiscover",
    "srv:caldavs",
    "srv:carddavs",
]
HOST_KEYS = [f"host:{IPV4}", f"host:{IPV6}", f"ptr:{IPV4}", f"ptr:{IPV6}"]


@pytest.fixture
def full_domain(domain):
    """good.test with every kind of record expected, BIMI included (logo + DMARC enforcing)."""
    bimi_upload(actor=SYSTEM, domain=domain, data=LOGO)
    dmarc_set_stage(actor=SYSTEM, domain=domain, policy="quarantine", pct=100, force=True)
    return domain


def selector_of(domain) -> str:
    return domain.dkim_keys.get().selector


def txt(name: str, value: str) -> str:
    return f"{name}. IN TXT {rdata_text(Record('', name, 'TXT', value, ''))}\n"


def test_it_finds_every_record_ok_in_a_zone_made_from_the_generated_fragment(
    dns_world, full_domain
):
    fragment = fragment_for(full_domain)
    assert '" "' in fragment  # the 2048-bit key is split into 255-byte strings
    dns_world({"good.test": fragment})
    results = check_now(full_domain)
    dkim = f"dkim:{selector_of(full_domain)}"
    assert set(results) == {*DOMAIN_KEYS, *HOST_KEYS, dkim}
    assert {key: r.status for key, r in results.items()} == {key: "ok" for key in results}, {
        key: r.detail for key, r in results.items() if r.status != "ok"
    }
    assert results[dkim].detail == "The published rsa key matches the stored key."
    assert results["spf"].detail.startswith(f"SPF passes for {IPV4}, {IPV6} (0 of 10")


def test_it_reports_every_missing_record_as_wrong(dns_world, full_domain):
    dns_world(
        {"good.test": ""},
        ptr_target="nothing.invalid.",
    )
    results = check_now(full_domain)
    for key in [*DOMAIN_KEYS, f"dkim:{selector_of(full_domain)}"]:
        if key == "mta-sts-policy":
            continue  # served by the portal, not DNS
        assert results[key].status == "wrong", (key, results[key])
        assert results[key].found == ()
    assert results["mx"].detail == "good.test has no MX record."
    assert results["dmarc"].detail == "No DMARC record at _dmarc.good.test."
    assert results["srv:imaps"].detail == "No SRV record at _imaps._tcp.good.test."


def test_it_reports_what_it_found_when_records_are_wrong(dns_world, full_domain):
    _, other_key = generate_rsa_key()
    selector = selector_of(full_domain)
    zone = (
        "good.test. IN MX 10 mx.elsewhere.test.\n"
        + txt("good.test", f"v=spf1 ip4:{OTHER_IPV4} -all")
        + txt(f"{selector}._domainkey.good.test", f"v=DKIM1; k=rsa; p={other_key}")
        + txt("_dmarc.good.test", "v=DMARC1; p=none; rua=mailto:someone@else.test")
        + txt("_mta-sts.good.test", "v=STSv1; id=20240101")
        + txt("_smtp._tls.good.test", "v=TLSRPTv1; rua=mailto:tls@else.test")
        + txt("default._bimi.good.test", "v=BIMI1; l=https://else.test/logo.svg")
        + "autoconfig.good.test. IN CNAME mail.else.test.\n"
        + f"autodiscover.good.test. IN A {OTHER_IPV4}\n"
        + f"_submissions._tcp.good.test. IN SRV 0 1 587 {MAIL_HOST}.\n"
        + "_imaps._tcp.good.test. IN SRV 0 1 993 imap.else.test.\n"
    )
    dns_world(
        {"good.test": zone, "provider.test": f"mail IN A {OTHER_IPV4}\n"},
        ptr_target="host.else.test.",
    )
    results = check_now(full_domain)
    expected = {
        "mx": ("The MX points elsewhere, not to mail.provider.test.", ("10 mx.elsewhere.test.",)),
        "spf": (
            f"SPF does not authorise {IPV4}: fail (matched -all).",
            (f"v=spf1 ip4:{OTHER_IPV4} -all",),
        ),
        f"dkim:{selector}": ("The published key is not the stored key.", None),
        "dmarc": (
            "DMARC differs: p=none (expected quarantine); rua=mailto:someone@else.test "
            "(expected mailto:dmarc@good.test).",
            None,
        ),
        "tls-rpt": ("rua=mailto:tls@else.test, expected rua=mailto:tls@good.test.", None),
        "bimi": (
            "l=https://else.test/logo.svg, expected "
            "l=https://portal.provider.test/bimi/good.test/logo.svg.",
            None,
        ),
        "autoconfig": (
            "autoconfig.good.test is an alias of mail.else.test, not mail.provider.test.",
            ("CNAME mail.else.test.",),
        ),
        "autodiscover": (
            f"autodiscover.good.test points to {OTHER_IPV4}, not to mail.provider.test.",
            (f"A {OTHER_IPV4}",),
        ),
        "srv:submissions": ("Expected mail.provider.test port 465.", (f"0 1 587 {MAIL_HOST}.",)),
        "srv:imaps": ("Expected mail.provider.test port 993.", ("0 1 993 imap.else.test.",)),
        f"host:{IPV4}": (f"mail.provider.test does not have the address {IPV4}.", (OTHER_IPV4,)),
        f"host:{IPV6}": ("mail.provider.test has no AAAA record.", ()),
        f"ptr:{IPV4}": (
            f"{IPV4} reverses to host.else.test, not mail.provider.test.",
            ("host.else.test",),
        ),
    }
    for key, (detail, found) in expected.items():
        assert results[key].status == "wrong", (key, results[key])
        assert results[key].detail == detail, key
        if found is not None:
            assert results[key].found == found, key
    assert results["mta-sts"].status == "wrong"
    assert results["mta-sts"].detail.startswith("id=20240101, expected id=")


def test_it_accepts_an_autoconfig_a_record_with_the_mail_hosts_address(dns_world, domain):
    fragment = fragment_for(domain).replace(
        f"autoconfig.good.test. 300 IN CNAME {MAIL_HOST}.", f"autoconfig.good.test. A {IPV4}"
    )
    dns_world({"good.test": fragment})
    result = check_now(domain)["autoconfig"]
    assert (result.status, result.detail) == (
        "ok",
        f"autoconfig.good.test has the same address as {MAIL_HOST}.",
    )


def test_it_wants_our_mail_host_among_the_preferred_mx(dns_world, domain):
    dns_world({"good.test": f"good.test. MX 20 {MAIL_HOST}.\ngood.test. MX 10 mx.other.test.\n"})
    result = check_now(domain)["mx"]
    assert result.status == "wrong"
    assert result.detail == f"{MAIL_HOST} is listed, but mx.other.test is preferred."


def test_it_refuses_reverse_dns_that_is_not_forward_confirmed(dns_world, domain):
    dns_world({"good.test": "", "provider.test": f"mail IN AAAA {IPV6}\n"})
    result = check_now(domain)[f"ptr:{IPV4}"]
    assert result.status == "wrong"
    assert result.detail == f"{MAIL_HOST} does not resolve back to {IPV4}."


def test_it_says_unknown_for_every_check_when_the_servers_answer_servfail(
    dns_world, full_domain, silent_dns
):
    dns_world(
        {},
        broken=["good.test", "provider.test", "2.0.192.in-addr.arpa", "8.b.d.0.1.0.0.2.ip6.arpa"],
    )
    silent_http = "http://" + silent_dns.replace("@", ":")
    results = check_now(full_domain, fetch_policy=http_fetcher(silent_http, timeout=0.3))
    assert {key: r.status for key, r in results.items()} == {key: "unknown" for key in results}
    assert "SERVFAIL" in results["mx"].detail
    assert "timed out" in results["mta-sts-policy"].detail


def test_it_says_unknown_when_the_server_never_answers(mail_settings, full_domain, silent_dns):
    mail_settings.MAILHOST_DNS_RESOLVERS = [silent_dns]
    results = check_now(full_domain, lifetime_ms=100)
    dns_results = {key: r for key, r in results.items() if key != "mta-sts-policy"}
    assert {r.status for r in dns_results.values()} == {"unknown"}
    assert "within the time limit" in results["mx"].detail
    assert results["mta-sts-policy"].status == "ok"  # the portal itself still answers


def test_it_reports_a_policy_the_portal_does_not_serve_as_wrong(dns_world, domain):
    dns_world({"good.test": fragment_for(domain)})
    domain.status = "disabled"
    domain.save(update_fields=["status"])
    result = check_now(domain, fetch_policy=portal_fetcher())["mta-sts-policy"]
    assert (result.status, result.detail) == (
        "wrong",
        "Fetching the policy: HTTP 400 (redirects are not followed)",  # host not served
    )
