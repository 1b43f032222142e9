"""The event agent's TLS outcomes (failures by RFC 8460 result type, successes per day), from
Postfix log lines, on files (the real daemons: tests/routing/test_outbound_tls.py)."""

import json

import pytest

from mailhost.backend.events import PolicyLookup, follow
from mailhost.backend.tls_policy import (
    OutboundTls,
    TlsPolicySnap,
    UnsafeTlsValue,
    render_policy_map,
    result_type,
)
from tests.backend.event_store import log_text, store_rows

SMTP = "Dec 01 15:31:01 mail postfix/smtp"


def failures(db) -> list[tuple]:
    return store_rows(db, "SELECT domain, mx_host, mx_ip, policy_type, policy, result_type "
                          "FROM tls_failures ORDER BY id")


def test_it_records_a_dane_mismatch_once_per_attempt_and_domain(tmp_path):
    log, db = tmp_path / "postfix.log", tmp_path / "events.sqlite"
    log.write_text(log_text(
        f"{SMTP}[30]: Untrusted TLS connection established to mx.b.example[192.0.2.5]:25: "
        "TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)",
        f"{SMTP}[30]: 7EF: to=<a@b.example>, relay=mx.b.example[192.0.2.5]:25, delay=0.2, "
        "delays=0/0/0.1/0, dsn=4.7.5, status=deferred (Server certificate not trusted)",
        f"{SMTP}[30]: 7EF: to=<c@b.example>, relay=mx.b.example[192.0.2.5]:25, delay=0.2, "
        "delays=0/0/0.1/0, dsn=4.7.5, status=deferred (Server certificate not trusted)",
    ))
    follow(log, db, policy=PolicyLookup(default_level="dane"))
    follow(log, db, policy=PolicyLookup(default_level="dane"))
    assert failures(db) == [("b.example", "mx.b.example", "192.0.2.5", "tlsa",
                             json.dumps(["mailhost-default: dane"]), "tlsa-invalid")]


def test_it_names_the_override_and_the_certificate_problem(tmp_path):
    log, db, policies = (tmp_path / "postfix.log", tmp_path / "events.sqlite",
                         tmp_path / "tls-policy")
    policies.write_text(render_policy_map([TlsPolicySnap("partner.example", "secure")]))
    log.write_text(log_text(
        f"{SMTP}[31]: certificate verification failed for mx.partner.example[192.0.2.6]:25: "
        "untrusted issuer /CN=Some CA",
        f"{SMTP}[31]: 8AA: to=<a@partner.example>, relay=mx.partner.example[192.0.2.6]:25, "
        "delay=1, delays=0/0/0/1, dsn=4.7.5, status=deferred (Server certificate not trusted)",
        f"{SMTP}[32]: 8AB: to=<x@other.example>, relay=mx.other.example[192.0.2.7]:25, "
        "delay=1, delays=0/0/0/1, dsn=4.7.4, status=deferred (TLS is required, but was not "
        "offered by host mx.other.example[192.0.2.7])",
        # Not TLS: nothing recorded.
        f"{SMTP}[33]: 8AC: to=<x@third.example>, relay=none, delay=1, delays=0/0/1/0, "
        "dsn=4.4.1, status=deferred (connect to third.example: Connection refused)",
    ))
    follow(log, db, policy=PolicyLookup(policies, None, "encrypt"))
    assert [(f[0], f[3], f[5]) for f in failures(db)] == [
        ("partner.example", "local", "certificate-not-trusted"),
        ("other.example", "no-policy-found", "starttls-not-supported"),
    ]


def test_it_counts_tls_sessions_that_succeeded_per_day_and_domain(tmp_path):
    log, db = tmp_path / "postfix.log", tmp_path / "events.sqlite"
    log.write_text(log_text(
        f"{SMTP}[40]: Verified TLS connection established to mx.b.example[192.0.2.5]:25: "
        "TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)",
        f"{SMTP}[40]: 9AA: to=<a@b.example>, relay=mx.b.example[192.0.2.5]:25, delay=0.2, "
        "delays=0/0/0.1/0, dsn=2.0.0, status=sent (250 2.0.0 Ok)",
        f"{SMTP}[40]: 9AB: to=<b@b.example>, relay=mx.b.example[192.0.2.5]:25, delay=0.2, "
        "delays=0/0/0.1/0, dsn=2.0.0, status=sent (250 2.0.0 Ok)",
    ))
    follow(log, db)
    assert store_rows(db, "SELECT domain, successes FROM tls_sessions") == [("b.example", 2)]


@pytest.mark.parametrize(("reply", "note", "policy", "expected"), [
    ("Server certificate not verified", "", "sts", "certificate-host-mismatch"),
    ("Server certificate not trusted", "certificate has expired", "sts", "certificate-expired"),
    ("Server certificate not trusted", "", "sts", "certificate-not-trusted"),
    ("TLSA lookup error for mx.b.example:25", "", "tlsa", "dnssec-invalid"),
    ("Cannot start TLS: handshake failure", "", "no-policy-found", "validation-failure"),
    ("host mx said: 550 5.1.1 no such user", "", "sts", None),
])
def test_it_names_results_as_rfc_8460_does(reply, note, policy, expected):
    assert result_type(reply, note, policy) == expected


def test_the_policy_map_refuses_what_would_break_a_map_line():
    for snap in (TlsPolicySnap("a.example none", "may"), TlsPolicySnap("a.example", "none"),
                 TlsPolicySnap("a..example", "secure")):
        with pytest.raises(UnsafeTlsValue):
            render_policy_map([snap])


def test_the_settings_refuse_dane_without_dnssec():
    with pytest.raises(ValueError, match="DNSSEC"):
        OutboundTls(dane_mode="dane", dnssec_validate=False)
    assert OutboundTls(tls_mode="encrypt", dane_mode="dane").default_level == "encrypt"
    assert OutboundTls(dane_mode="dane-only").default_level == "dane-only"
    assert OutboundTls(dane_mode="off", dnssec_validate=False).default_level == "may"
