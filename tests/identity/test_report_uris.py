"""The report-URI schema (identity.report_uris): what reaches DMARC and TLS-RPT records."""

import pytest

from identity.report_uris import report_uris


@pytest.mark.parametrize(
    ("raw", "uri"),
    [
        ("Dmarc@Good.Test", "mailto:dmarc@good.test"),
        ("MAILTO:re+abc123=x@rua.reports.example", "mailto:re+abc123=x@rua.reports.example"),
        ("first.last_1-x@bücher.example", "mailto:first.last_1-x@xn--bcher-kva.example"),
        (
            "https://TLS.Reports.Example:8443/v1/r?t=a%2Fb&k=1",
            "https://tls.reports.example:8443/v1/r?t=a%2Fb&k=1",
        ),
        ("https://tls.reports.example", "https://tls.reports.example"),
    ],
)
def test_it_accepts_ordinary_report_uris_in_canonical_form(raw, uri):
    assert report_uris([raw], https=True) == [uri]


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("a b@good.test", "space"),
        ("a\u2028b@good.test", "line break"),
        ("a..b@good.test", "letters, digits"),
        (".a@good.test", "letters, digits"),
        ("a@good.test@x.test", "letters, digits"),
        ("a@", "domain name"),
        ("https://r.test/a b", "space"),
        ("https://r.test/%zz", "%-escapes"),
        ("https://r.test/#frag", "#"),
        ("https://127.0.0.1/r", "IP address"),
        ("https://r.test:99999/r", "port"),
        ("http://r.test/r", "not an https"),
        ("ftp://r.test/r", "not an https"),
    ],
)
def test_it_refuses_anything_else_saying_why(raw, reason):
    with pytest.raises(ValueError, match=reason):
        report_uris([raw], https=True)


def test_it_bounds_and_deduplicates_the_list():
    assert report_uris(["a@good.test", "mailto:A@good.test"], https=False) == ["mailto:a@good.test"]
    with pytest.raises(ValueError, match="at most 5"):
        report_uris([f"a{n}@good.test" for n in range(6)], https=False)
    with pytest.raises(ValueError, match="mailto: addresses only"):
        report_uris(["https://r.test/x"], https=False)
