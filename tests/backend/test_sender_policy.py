"""The sender-binding rule on its own (mailhost/backend/sender_policy.py): the parser that
decides which address a From: field names, and the rule per listener. The attacks against the
running stack are in tests/security/test_sender_binding.py."""

import pytest

from mailhost.backend.sender_policy import (
    INTERNAL,
    SUBMISSION,
    Envelope,
    Refused,
    check,
    is_auto_submitted,
    parse_mailbox,
)


class Store:
    logins = {("bob@b.test", "bob@b.test"), ("sales@b.test", "bob@b.test")}

    def may_send_as(self, login, address):
        return (address, login) in self.logins

    def is_hosted(self, domain):
        return domain in {"a.test", "b.test"}


@pytest.mark.parametrize(
    ("value", "address"),
    [
        ("bob@b.test", "bob@b.test"),
        ("Bob@B.Test", "bob@b.test"),
        ("<bob@b.test>", "bob@b.test"),
        ("Bob Builder <bob@b.test>", "bob@b.test"),
        ('"Builder, Bob" <bob@b.test>', "bob@b.test"),
        ("=?utf-8?q?B=C3=B6b?= <bob@b.test>", "bob@b.test"),
        ("Bob J. Builder <bob@b.test>", "bob@b.test"),
        ("Bob\r\n <bob@b.test>", "bob@b.test"),  # folded
    ],
)
def test_it_reads_one_plain_mailbox(value, address):
    assert parse_mailbox("From", value) == address


@pytest.mark.parametrize(
    "value",
    [
        "", "bob", "bob@", "@b.test", "bob@b.test, alice@a.test", "Team: bob@b.test;",
        "Team:;", "bob@b.test (alice@a.test)", "alice@a.test <bob@b.test>",
        "<bob@b.test> alice@a.test", '"alice@a.test" <bob@b.test>', '"x"@b.test',
        "bob@[127.0.0.1]", "<bob@b.test", "bob@b.test>", "<<bob@b.test>>", "bob@b..test",
        "bob@b.test.", '"Bob \\" <alice@a.test>" <bob@b.test>', "bob@b.test\r\nFrom: a@a.test",
        "<@relay.test:bob@b.test>",
    ],
)
def test_it_refuses_anything_else_rather_than_guess(value):
    with pytest.raises(Refused):
        parse_mailbox("From", value)


@pytest.mark.parametrize(
    ("values", "auto"),
    [
        ([], False), (["no"], False), (["No (by hand)"], False), (["auto-replied"], True),
        (["auto-replied (vacation)"], True), (["auto-notified; owner-email=x@y"], True),
        (["no", "auto-replied"], True), (["auto-replied", "no"], True), (["garbage"], True),
    ],
)
def test_it_only_gets_stricter_when_auto_submitted_fields_are_added(values, auto):
    assert is_auto_submitted([("Auto-Submitted", v) for v in values]) is auto


def sub(sender="", login="bob@b.test"):
    return Envelope(listener=SUBMISSION, login=login, sender=sender)


def internal(sender):
    return Envelope(listener=INTERNAL, login=None, sender=sender)


@pytest.mark.parametrize(
    ("envelope", "headers"),
    [
        (sub(), [("From", "bob@b.test")]),
        (sub("bob@b.test"), [("From", "Sales <sales@b.test>"), ("Reply-To", "x@a.test")]),
        (sub(), [("From", "bob@b.test"), ("Sender", "sales@b.test")]),
        (internal("bob@b.test"), [("From", "ceo@a.test")]),  # a forward keeps its author
        (internal("bob@b.test"), [("From", "bob@b.test"), ("Auto-Submitted", "auto-replied")]),
        (internal("bob@b.test"), [("From", "sales@b.test"), ("Auto-Submitted", "auto-replied")]),
        (internal(""), [("From", "postmaster@mail.host.test"), ("Auto-Submitted", "auto-replied")]),
    ],
)
def test_it_passes_what_the_identity_owns(envelope, headers):
    check(envelope, headers, Store())


@pytest.mark.parametrize(
    ("envelope", "headers"),
    [
        (sub(), []),
        (sub(), [("From", "alice@a.test")]),
        (sub("bob@b.test"), [("From", "alice@a.test")]),
        (sub("alice@a.test"), [("From", "bob@b.test")]),
        (sub(), [("From", "bob@b.test"), ("Sender", "alice@a.test")]),
        (sub(), [("From", "bob@b.test"), ("FROM", "alice@a.test")]),
        (sub(), [("From", "bob@b.test"), ("Sender", "bob@b.test"), ("sender", "bob@b.test")]),
        (sub(login=None), [("From", "bob@b.test")]),
        (internal(""), [("From", "ceo@a.test")]),
        (internal(""), [("From", "ceo@a.test"), ("From", "x@outside.test")]),
        (internal("bob@b.test"), [("From", "security@a.test"), ("Auto-Submitted", "auto-replied")]),
        (internal("bob@b.test"),
         [("From", "bob@b.test"), ("Sender", "security@a.test"), ("Auto-Submitted", "x")]),
        (internal("bob@b.test"),
         [("From", "bob@b.test"), ("From", "security@a.test"), ("Auto-Submitted", "auto-replied"),
          ("Auto-Submitted", "no")]),
        (Envelope(listener="unknown:", login=None, sender="bob@b.test"), [("From", "bob@b.test")]),
    ],
)
def test_it_refuses_what_the_identity_does_not_own(envelope, headers):
    with pytest.raises(Refused):
        check(envelope, headers, Store())
