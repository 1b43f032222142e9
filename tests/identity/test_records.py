import pytest

from identity import dmarc, mtasts
from identity.records import (
    DkimKeySnap,
    PostureSnap,
    Record,
    expected_records,
    rdata_text,
    txt_chunks,
    zone_fragment,
    zone_line,
)
from mailhost.endpoints import ClientEndpoints
from tests.identity.support import lookup_at

KEY = "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA" + "A" * 348 + "IDAQAB"


def snap(**overrides) -> PostureSnap:
    values = dict(
        domain="example.test",
        mail_host="mail.provider.test",
        portal_host="portal.provider.test",
        ipv4=("192.0.2.25",),
        ipv6=("2001:db8::25",),
        dkim_keys=(DkimKeySnap("mh20260101", "rsa", KEY, "active"),),
        dmarc=dmarc.Dmarc(rua=("mailto:dmarc@example.test",)),
        mtasts_mode="testing",
        mtasts_mx=(),
        mtasts_max_age=604800,
        tlsrpt_rua=("mailto:tls@example.test",),
        bimi_url=None,
        clients=ClientEndpoints(
            host="mail.provider.test", imaps=993, imap=143, submissions=465, submission=587,
            https=443, dav=443,
        ),
    )
    return PostureSnap(**(values | overrides))


def by_key(records) -> dict:
    return {r.key: r for r in records}


def test_it_builds_every_record_of_the_architecture_table_with_exact_values():
    records = by_key(expected_records(snap()))
    expected = {
        "mx": ("example.test", "MX", "10 mail.provider.test."),
        "spf": ("example.test", "TXT", "v=spf1 ip4:192.0.2.25 ip6:2001:db8::25 -all"),
        "dkim:mh20260101": (
            "mh20260101._domainkey.example.test",
            "TXT",
            f"v=DKIM1; k=rsa; p={KEY}",
        ),
        "dmarc": ("_dmarc.example.test", "TXT", "v=DMARC1; p=none; rua=mailto:dmarc@example.test"),
        "tls-rpt": ("_smtp._tls.example.test", "TXT", "v=TLSRPTv1; rua=mailto:tls@example.test"),
        "mta-sts-policy": ("mta-sts.example.test", "CNAME", "portal.provider.test."),
        "autoconfig": ("autoconfig.example.test", "CNAME", "mail.provider.test."),
        "autodiscover": ("autodiscover.example.test", "CNAME", "mail.provider.test."),
        "srv:submissions": ("_submissions._tcp.example.test", "SRV", "0 1 465 mail.provider.test."),
        "srv:imaps": ("_imaps._tcp.example.test", "SRV", "0 1 993 mail.provider.test."),
        "srv:autodiscover": (
            "_autodiscover._tcp.example.test",
            "SRV",
            "0 1 443 mail.provider.test.",
        ),
        "srv:caldavs": ("_caldavs._tcp.example.test", "SRV", "0 1 443 mail.provider.test."),
        "srv:carddavs": ("_carddavs._tcp.example.test", "SRV", "0 1 443 mail.provider.test."),
        "host:192.0.2.25": ("mail.provider.test", "A", "192.0.2.25"),
        "host:2001:db8::25": ("mail.provider.test", "AAAA", "2001:db8::25"),
        "ptr:192.0.2.25": ("25.2.0.192.in-addr.arpa", "PTR", "mail.provider.test."),
    }
    for key, (name, rtype, value) in expected.items():
        assert (records[key].name, records[key].type, records[key].value) == (name, rtype, value)
    assert records["ptr:2001:db8::25"].name.endswith(".8.b.d.0.1.0.0.2.ip6.arpa")
    assert records["mta-sts"].value.startswith("v=STSv1; id=")
    assert "bimi" not in records


def test_it_falls_back_to_the_mail_hosts_address_in_spf_without_configured_ips():
    records = by_key(expected_records(snap(ipv4=(), ipv6=())))
    assert records["spf"].value == "v=spf1 a:mail.provider.test -all"
    assert not [k for k in records if k.startswith(("host:", "ptr:"))]


def test_it_lists_a_dkim_record_for_every_key_that_belongs_in_dns():
    keys = (
        DkimKeySnap("mh20260101", "rsa", KEY, "retiring"),
        DkimKeySnap("mh20260701", "rsa", KEY, "active"),
        DkimKeySnap(
            "mh20260701b", "ed25519", "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=", "pending"
        ),
    )
    records = by_key(expected_records(snap(dkim_keys=keys)))
    assert [k for k in records if k.startswith("dkim:")] == [
        "dkim:mh20260101",
        "dkim:mh20260701",
        "dkim:mh20260701b",
    ]
    assert records["dkim:mh20260701b"].value.startswith("v=DKIM1; k=ed25519; p=11qY")


def test_it_writes_dmarc_stages_pct_and_alignment():
    value = dmarc.txt_value(
        dmarc.Dmarc(
            policy="quarantine",
            pct=25,
            rua=("mailto:a@x.test",),
            ruf=("mailto:f@x.test",),
            adkim="s",
            aspf="s",
        )
    )
    assert value == (
        "v=DMARC1; p=quarantine; pct=25; rua=mailto:a@x.test; ruf=mailto:f@x.test; adkim=s; aspf=s"
    )
    assert dmarc.parse(value).pct == 25


def test_it_recommends_the_next_dmarc_stage():
    assert dmarc.next_step("none", 100) == ("quarantine", 25)
    assert dmarc.next_step("quarantine", 25) == ("quarantine", 50)
    assert dmarc.next_step("quarantine", 100) == ("reject", 100)
    assert dmarc.next_step("quarantine", 70) == ("quarantine", 100)
    assert dmarc.next_step("reject", 100) is None


def test_it_adds_bimi_only_when_a_logo_exists_and_dmarc_enforces_at_pct_100():
    url = "https://portal.provider.test/bimi/example.test/logo.svg"
    assert "bimi" not in by_key(expected_records(snap(bimi_url=url)))
    enforcing = dmarc.Dmarc(policy="reject")
    assert by_key(expected_records(snap(bimi_url=url, dmarc=enforcing)))["bimi"].value == (
        f"v=BIMI1; l={url}"
    )
    partial = dmarc.Dmarc(policy="quarantine", pct=50)
    assert "bimi" not in by_key(expected_records(snap(bimi_url=url, dmarc=partial)))


def test_it_derives_the_mta_sts_id_from_the_policy_so_it_changes_with_it():
    testing = by_key(expected_records(snap()))["mta-sts"].value
    enforcing = by_key(expected_records(snap(mtasts_mode="enforce")))["mta-sts"].value
    assert testing != enforcing
    assert by_key(expected_records(snap()))["mta-sts"].value == testing  # stable


def test_it_writes_the_mta_sts_policy_in_exact_rfc_8461_form():
    text = mtasts.policy_text(
        mode="enforce", mx=["mail.provider.test", "*.backup.test"], max_age=86400
    )
    assert text == (
        "version: STSv1\r\nmode: enforce\r\nmx: mail.provider.test\r\nmx: *.backup.test\r\n"
        "max_age: 86400\r\n"
    )
    assert mtasts.parse_policy(text) == mtasts.Policy(
        "enforce", ("mail.provider.test", "*.backup.test"), 86400
    )
    assert mtasts.mx_matches("*.backup.test", "mx1.backup.test")
    assert not mtasts.mx_matches("*.backup.test", "a.mx1.backup.test")


def test_it_splits_long_txt_values_into_255_byte_strings():
    value = f"v=DKIM1; k=rsa; p={KEY}"
    chunks = txt_chunks(value)
    assert [len(c) for c in chunks] == [255, len(value) - 255]
    assert "".join(chunks) == value
    record = by_key(expected_records(snap()))["dkim:mh20260101"]
    assert rdata_text(record) == f'"{chunks[0]}" "{chunks[1]}"'


def test_it_writes_a_zone_fragment_with_the_domains_records_and_comments_the_rest():
    text = zone_fragment(expected_records(snap()), domain="example.test", ttl=3600)
    # Lines as dnspython renders them from typed rdata (space-separated, TXT quoted and split).
    assert "example.test. 3600 IN MX 10 mail.provider.test.\n" in text
    assert 'example.test. 3600 IN TXT "v=spf1 ip4:192.0.2.25 ip6:2001:db8::25 -all"\n' in text
    assert "; mail.provider.test. 3600 IN A 192.0.2.25\n" in text
    assert "; 25.2.0.192.in-addr.arpa. 3600 IN PTR mail.provider.test.\n" in text


@pytest.mark.dns
def test_it_writes_a_fragment_that_a_real_dns_server_loads_as_is(knot):
    text = zone_fragment(expected_records(snap()), domain="example.test", ttl=3600)
    server = knot({"example.test": text})
    lookup = lookup_at(server.address)
    assert lookup.texts("mh20260101._domainkey.example.test", "TXT") == [f"v=DKIM1; k=rsa; p={KEY}"]
    answer = lookup.answer("_imaps._tcp.example.test", "SRV")
    assert [(rr.port, rr.target.to_text()) for rr in answer] == [(993, "mail.provider.test.")]


def test_it_refuses_a_value_that_is_more_than_one_record_every_time():
    # The parsed data is shared between records with the same value: the refusal must not be.
    record = Record("mx", "victim.example", "MX", "10 a.example.\n10 b.example.", "")
    for _ in range(2):
        with pytest.raises(ValueError, match="mx: .* is more than one MX record"):
            zone_line(record, ttl=300)
    assert zone_line(Record("mx", "victim.example", "MX", "10 a.example.", ""), ttl=300) == (
        "victim.example. 300 IN MX 10 a.example."
    )
