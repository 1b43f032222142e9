"""reports.parsing on the RFC corpus and on hostile input. Pure: no database."""

import gzip

import pytest

from reports import parsing
from tests.reports.corpus import (
    aggregate,
    billion_laughs,
    external_entity,
    fixture,
    gzip_bomb,
    invalid_utf8,
    zip_bomb,
    zipped,
)

DEFAULT = parsing.Limits()


def only(data: bytes, limits=DEFAULT):
    found = parsing.reports_in(data, limits)
    assert len(found) == 1
    return found[0]


def test_it_reads_an_rfc7489_aggregate_report():
    report = only(fixture("aggregate-rfc7489.xml"))
    assert report.meta.domain == "example.com"
    assert report.meta.org_name == "acme.com"
    assert report.meta.report_id == "9391651994964116463"
    assert report.meta.policy == "none" and report.meta.pct == 100
    first, second = list(report.records)
    assert (first.source_ip, first.count, first.dkim_aligned, first.spf_aligned) == (
        "192.0.2.25", 120, True, True)
    assert first.dkim[0].selector == "mh2024"
    assert (second.source_ip, second.count, second.dkim_aligned, second.spf_aligned) == (
        "198.51.100.77", 2, False, False)
    assert second.reasons == ("local_policy",)


def test_it_reads_a_dmarcbis_report_with_its_namespace():
    report = only(fixture("aggregate-dmarcbis.xml"))
    assert report.meta.domain == "example.com"
    assert report.meta.version == "1.0"
    assert report.meta.policy == "quarantine" and report.meta.pct is None
    (record,) = list(report.records)
    assert record.disposition == "pass" and record.dkim_aligned and not record.spf_aligned


@pytest.mark.parametrize("wrap", [gzip.compress, zipped], ids=["gzip", "zip"])
def test_it_reads_compressed_reports(wrap):
    report = only(wrap(fixture("aggregate-rfc7489.xml")))
    assert report.meta.report_id == "9391651994964116463"
    assert sum(r.count for r in report.records) == 122


def test_it_reads_the_rfc8460_tls_report_plain_and_gzipped():
    for data in (fixture("tlsrpt-rfc8460.json"), gzip.compress(fixture("tlsrpt-rfc8460.json"))):
        report = only(data)
        assert report.kind == "tls"
        assert report.domain == "company-y.example"
        (policy,) = report.policies
        assert (policy.successes, policy.failures) == (5326, 303)
        assert [f.result_type for f in policy.failure_details] == [
            "certificate-expired", "starttls-not-supported", "validation-failure"]


def test_it_reads_an_rfc6591_failure_report_and_keeps_no_local_parts():
    report = only(fixture("failure-rfc6591.eml"))
    assert report.kind == "dmarc-failure"
    assert report.domain == "example.com"
    assert report.auth_failure == "dmarc" and report.source_ip == "192.0.2.1"
    assert report.header_from_domain == "example.com"
    assert report.envelope_from_domain == "example.net"
    kept = " ".join(str(v) for v in vars(report).values())
    assert "alice" not in kept and "somespammer" not in kept and "user@" not in kept


def test_it_finds_a_report_inside_a_forwarded_message():
    report = only(fixture("forwarded.eml"))
    assert report.meta.report_id == "9391651994964116463"


def test_it_reads_a_report_mailed_as_an_attachment():
    from email.message import EmailMessage

    message = EmailMessage()
    message["From"] = "noreply-dmarc-support@google.com"
    message["Subject"] = "Report domain: example.com"
    message.set_content("report attached")
    message.add_attachment(zipped(aggregate(report_id="g-1")), maintype="application",
                           subtype="zip", filename="google.com!example.com!1!2.zip")
    assert only(message.as_bytes()).meta.report_id == "g-1"


# --- hostile input: a Rejected with a reason, nothing else ------------------------------------


def rejected(data: bytes, limits=DEFAULT) -> str:
    with pytest.raises(parsing.Rejected) as caught:
        for report in parsing.reports_in(data, limits):
            list(getattr(report, "records", ()))
    return str(caught.value)


def test_it_refuses_the_billion_laughs():
    assert "DTD" in rejected(billion_laughs())


def test_it_refuses_an_external_entity():
    assert "DTD" in rejected(external_entity())


def test_it_stops_a_zip_bomb_at_the_cap():
    assert "larger than 1048576 bytes uncompressed" in rejected(
        zip_bomb(), parsing.Limits(max_uncompressed=1024 * 1024))


def test_it_stops_a_gzip_bomb_at_the_cap():
    assert "larger than" in rejected(gzip_bomb(64 * 1024 * 1024),
                                     parsing.Limits(max_uncompressed=1024 * 1024))


def test_it_refuses_a_report_over_the_size_limit():
    assert "larger than 1000 bytes" in rejected(b"<" + b" " * 1000, parsing.Limits(max_bytes=1000))


def test_it_refuses_malformed_xml():
    assert "malformed" in rejected(aggregate()[:-20])


def test_it_refuses_invalid_utf8():
    assert "not UTF-8" in rejected(invalid_utf8())
    assert "not UTF-8" in rejected(fixture("tlsrpt-rfc8460.json").replace(b"Company", b"\xff"))


def test_it_refuses_too_many_records():
    rows = [("192.0.2.1", 1, "pass", "pass")] * 5
    assert "more than 3 records" in rejected(aggregate(rows=rows), parsing.Limits(max_records=3))


def test_it_refuses_what_is_not_a_report():
    assert "not a DMARC <feedback>" in rejected(b"<html><body/></html>")
    assert "not XML, JSON" in rejected(b"\x00\x01binary")
    assert "policies" in rejected(b'{"hello": 1}')
    assert "No DMARC or TLS report" in rejected(b"Subject: hi\r\n\r\njust text\r\n")


def test_it_refuses_bad_values_inside_a_report():
    assert "not an IP address" in rejected(aggregate(rows=[("not-an-ip", 1, "pass", "pass")]))
    assert "whole number" in rejected(aggregate(rows=[("192.0.2.1", -5, "pass", "pass")]))
    assert "not a domain name" in rejected(aggregate(domain="x"))


def test_it_refuses_deeply_nested_archives():
    assert "another archive" in rejected(gzip.compress(gzip.compress(aggregate())))
    assert "another archive" in rejected(zipped(zipped(aggregate()), "inner.zip"))
