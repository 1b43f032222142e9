"""Zone-file and record injection through posture settings (issue 10, finding 8), as the attacker.

An organisation admin types report addresses and MTA-STS patterns; they end up in TXT records,
in the BIND zone file the operator pastes into a real zone, in RFC 2136 updates and in the
served MTA-STS policy. A separator in them must never make a second record, a second DMARC tag,
a second report URI or a second policy line.
"""

import dns.rdatatype
import dns.zone
import pytest
from django.test import Client

from identity.models import DomainPosture
from identity.records import in_zone
from identity.selectors import domain_records
from mailboxes.services import alias_create
from tenants.access import SYSTEM
from tests.factories import MembershipFactory
from tests.identity.conftest import domain, mail_settings, organisation  # noqa: F401
from tests.identity.support import api_for

pytestmark = pytest.mark.django_db

SETTINGS = "/domains/good.test/dns/settings"
NS_LINE = "\n@\tIN\tNS\tevil.example."  # no spaces: a newline, then a whole record


@pytest.fixture
def api(domain, organisation):  # noqa: F811
    return api_for(organisation)


@pytest.fixture
def owner_client(organisation):  # noqa: F811
    user = MembershipFactory(organisation=organisation, role="owner").user
    user.save()
    client = Client()
    client.force_login(user)
    return client


def exported(text: str) -> set[tuple[str, str, str]]:
    """Every record a DNS server would load from the exported text."""
    zone = dns.zone.from_text(text, origin="good.test.", relativize=False, check_origin=False)
    records = set()
    for name, _ttl, rdata in zone.iterate_rdatas():
        if rdata.rdtype == dns.rdatatype.TXT:
            value = b"".join(rdata.strings).decode()
            assert all(len(s) <= 255 for s in rdata.strings)
        else:
            value = rdata.to_text()
        records.add((name.to_text(omit_final_dot=True), rdata.rdtype.name, value))
    return records


def expected(domain) -> set[tuple[str, str, str]]:  # noqa: F811
    return {
        (r.name, r.type, r.value) for r in domain_records(domain) if in_zone(r.name, "good.test")
    }


def assert_zone_exports_exactly_the_expected_records(api, owner_client, domain):  # noqa: F811
    from_api = api.get("/domains/good.test/dns/zone")
    from_page = owner_client.get("/mail-admin/acme/domains/good.test/dns/zone/")
    assert from_api.status_code == from_page.status_code == 200
    for text in (from_api.content.decode(), from_page.content.decode()):
        records = exported(text)
        assert records == expected(domain)
        assert not [r for r in records if r[1] == "NS" or "evil" in r[0]]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("tls_rpt_rua", ["https://reports.good.test/tls" + NS_LINE]),
        ("tls_rpt_rua", ["mailto:tls@good.test" + NS_LINE]),
        ("tls_rpt_rua", ['https://reports.good.test/"tls']),
        ("tls_rpt_rua", ["https://reports.good.test/tls;v=TLSRPTv1"]),
        ("tls_rpt_rua", ["https://reports.good.test/a,mailto:spy@attacker.example"]),
        ("tls_rpt_rua", ["https://spy@attacker.example/tls"]),  # userinfo: whose host is it?
        ("tls_rpt_rua", ["https://reports.good.test/" + "a" * 2000]),  # bounded
        ("dmarc_rua", ["dmarc@good.test" + NS_LINE]),
        ("dmarc_rua", ['dm"arc@good.test']),
        ("dmarc_rua", ["dmarc@good.test;p=none"]),
        ("dmarc_rua", ["a?to=spy@attacker.example"]),  # a mailto: header field to someone else
        ("dmarc_ruf", ["a!10m@good.test"]),  # the DMARC size-limit separator
        ("dmarc_ruf", ["a%0abcc@good.test"]),  # a percent-encoded newline in the URI
        ("dmarc_ruf", ["mailto:a@good.test,mailto:spy@attacker.example"]),
    ],
)
def test_it_refuses_a_separator_in_a_report_address_and_exports_only_the_expected_records(
    api, owner_client, domain, field, value  # noqa: F811
):
    reply = api.send("PATCH", SETTINGS, {field: value})

    assert reply.status_code == 422, reply.content
    assert reply.json()["field"] == field.replace("tls_rpt_rua", "tlsrpt_rua")
    assert_zone_exports_exactly_the_expected_records(api, owner_client, domain)


@pytest.mark.parametrize(
    "pattern",
    ["evil.test\n.", "evil.test\nmx: *.attacker.example", 'mx"evil.test', "a.test;b.test"],
)
def test_it_refuses_a_separator_in_an_mta_sts_pattern_and_serves_only_the_expected_policy(
    api, domain, pattern  # noqa: F811
):
    reply = api.send("PUT", "/domains/good.test/mta-sts", {"mx": ["mail.provider.test", pattern]})

    assert reply.status_code == 422, reply.content
    assert reply.json()["field"] == "mx"
    policy = Client().get("/.well-known/mta-sts.txt", HTTP_HOST="mta-sts.good.test")
    lines = policy.content.decode().split("\r\n")
    assert lines == ["version: STSv1", "mode: testing", "mx: mail.provider.test",
                     "max_age: 604800", ""]


def test_it_serves_no_policy_line_from_a_pattern_that_slipped_past_validation(domain):  # noqa: F811
    DomainPosture.objects.create(
        domain=domain, mtasts_mx=["mail.provider.test", "evil.test\nmx: *.attacker.example"]
    )
    policy = Client().get("/.well-known/mta-sts.txt", HTTP_HOST="mta-sts.good.test")
    assert policy.content.decode().split("\r\n") == [
        "version: STSv1", "mode: testing", "mx: mail.provider.test", "max_age: 604800", ""
    ]


def test_it_keeps_a_value_that_slipped_past_validation_inside_one_txt_record(
    api, owner_client, domain  # noqa: F811
):
    """Rows written before the validation existed: the export still cannot grow a record."""
    DomainPosture.objects.create(
        domain=domain,
        tlsrpt_rua=["https://reports.good.test/tls" + NS_LINE],
        dmarc_rua=['mailto:a"b\\c@good.test' + NS_LINE],
    )
    assert_zone_exports_exactly_the_expected_records(api, owner_client, domain)


def test_it_accepts_real_report_addresses_and_splits_a_long_record(api, owner_client, domain):  # noqa: F811
    rua = [f"dmarc-aggregate-reports+tenant-{n}@reports.dmarc-analyser.example" for n in range(5)]
    # Report addresses in the domain itself must receive mail: a catch-all takes them all.
    alias_create(actor=SYSTEM, domain=domain, local_part="", destinations=["x@else.example"])
    reply = api.send("PATCH", SETTINGS, {
        "dmarc_rua": rua,
        "dmarc_ruf": ["mailto:Forensic.Reports_1=x@good.test"],
        "tls_rpt_rua": ["https://tlsrpt.reports.example:8443/v1/report?tenant=acme-1&k=a%2Fb",
                        "mailto:tls@good.test"],
    })

    assert reply.status_code == 200, reply.content
    dmarc = next(r for r in reply.json()["records"] if r["key"] == "dmarc")["value"]
    assert len(dmarc.encode()) > 255
    assert dmarc.count("mailto:") == 6
    assert_zone_exports_exactly_the_expected_records(api, owner_client, domain)
