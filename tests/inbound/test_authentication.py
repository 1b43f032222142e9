"""Inbound authentication on the real stack: what reaches a hosted mailbox from the internet.

Every message comes in on the MX port from an "internet" address (XCLIENT), is checked by the
node's Rspamd against records served by the node's resolver, and is read back over IMAP.
"""

import email
import email.policy
import smtplib

import pytest

from identity.inbound import inbound_policy_update
from tenants.access import SYSTEM
from tests.inbound.conftest import PASSWORD
from tests.inbound.support import (
    GTUBE,
    Client,
    auth_results,
    deliver_from_internet,
    fresh_ip,
    in_folder,
    marked,
    message,
    nothing_queued_for,
    outside_server,
    outside_zone,
    send_from_internet,
)
from tests.stack import HOSTNAME, fetch_inbox_raw, make_message, smtp_send, wait_for

pytestmark = [pytest.mark.stack, pytest.mark.django_db]


def test_it_refuses_a_forged_p_reject_sender_at_smtp(hosted, mail_stack):
    victim = hosted(prefix="rej", dmarc="reject", mailboxes=("alice", "ceo"))
    attacker = outside_server(mail_stack, f"attacker-{victim.name}", fresh_ip())
    subject = marked("forged ceo fraud")
    forged = message(victim.address("alice"), victim.address("ceo"), subject)

    with pytest.raises(smtplib.SMTPDataError) as refused:
        deliver_from_internet(mail_stack, attacker, victim.address("alice"),
                              victim.address("ceo"), forged)

    assert refused.value.smtp_code in (550, 554)
    assert refused.value.smtp_error.startswith(b"5.7.1")
    wait_for(lambda: nothing_queued_for(mail_stack, victim.address("ceo")))
    assert not in_folder(mail_stack, victim.address("ceo"), PASSWORD, "INBOX", subject)
    assert not in_folder(mail_stack, victim.address("ceo"), PASSWORD, "Junk", subject)


def test_it_files_a_p_quarantine_failure_into_junk(hosted, mail_stack):
    victim = hosted(prefix="qua")
    outsider = f"shop-{victim.name}"
    outside_zone(mail_stack, outsider, [
        f'{outsider}. 300 IN TXT "v=spf1 ip4:198.51.100.7 -all"',
        f'_dmarc.{outsider}. 300 IN TXT "v=DMARC1; p=quarantine"',
        f"{outsider}. 300 IN MX 10 mx.{outsider}.",
    ])
    forger = outside_server(mail_stack, f"forger-{victim.name}", fresh_ip())
    subject = marked("invoice overdue")
    sender = f"billing@{outsider}"

    deliver_from_internet(mail_stack, forger, sender, victim.address("ceo"),
                          message(sender, victim.address("ceo"), subject))

    (junked,) = wait_for(
        lambda: in_folder(mail_stack, victim.address("ceo"), PASSWORD, "Junk", subject))
    assert not in_folder(mail_stack, victim.address("ceo"), PASSWORD, "INBOX", subject)
    results = " ".join(auth_results(junked))
    assert "dmarc=fail" in results and "quarantine" in results


def test_it_delivers_aligned_dkim_mail_with_pass_results(hosted, mail_stack):
    """A second tenant's domain sends through the stack's real OpenDKIM; the signed message
    then reaches the victim's MX from an outside address, as from another mail server."""
    victim = hosted(prefix="dst")
    sender_domain = hosted(prefix="src", mailboxes=("bob",))
    bob = sender_domain.address("bob")
    subject = marked("signed hello")

    def signed() -> bytes | None:
        smtp_send(mail_stack, "submission", bob, bob, make_message(bob, bob, subject),
                  login=(bob, PASSWORD))
        raw = wait_for(lambda: [m for m in fetch_inbox_raw(mail_stack, bob, PASSWORD)
                                if subject.encode() in m])[-1]
        return raw if b"DKIM-Signature:" in raw else None

    raw = wait_for(signed, timeout=20, interval=0.3)
    headers, _, body = raw.partition(b"\r\n\r\n")
    kept = [line for line in headers.split(b"\r\n")
            if not line.startswith((b"Return-Path:", b"Delivered-To:", b"Received:"))]
    # Continuation lines of a dropped Received: start with whitespace: drop those too.
    lines, skipping = [], False
    for line in headers.split(b"\r\n"):
        if line[:1] in (b" ", b"\t"):
            if not skipping:
                lines.append(line)
            continue
        skipping = line not in kept
        if not skipping:
            lines.append(line)
    replay = b"\r\n".join(lines) + b"\r\n\r\n" + body
    their_server = outside_server(mail_stack, f"relay-{victim.name}", fresh_ip())

    deliver_from_internet(mail_stack, their_server, bob, victim.address("ceo"), replay)

    (raw_in,) = wait_for(lambda: [m for m in fetch_inbox_raw(mail_stack, victim.address("ceo"),
                                                             PASSWORD) if subject.encode() in m])
    delivered = email.message_from_bytes(raw_in, policy=email.policy.default)
    (results,) = auth_results(delivered)
    assert results.startswith(HOSTNAME)
    assert "dkim=pass" in results and f"header.d={sender_domain.name}" in results
    assert "dmarc=pass" in results


def test_it_rejects_gtube(hosted, mail_stack):
    victim = hosted(prefix="gtb")
    spammer = outside_server(mail_stack, f"spam-{victim.name}", fresh_ip())
    sender = f"x@spam-{victim.name}"
    gtube = message(sender, victim.address("ceo"), marked("gtube"),
                    body=f"Test.\n{GTUBE}\n")

    with pytest.raises(smtplib.SMTPDataError) as refused:
        send_from_internet(mail_stack, spammer, sender, victim.address("ceo"), gtube)

    assert 500 <= refused.value.smtp_code < 600
    assert b"Gtube" in refused.value.smtp_error or refused.value.smtp_error.startswith(b"5.7.1")


def test_it_files_spammy_mail_below_the_reject_score_into_junk(hosted, mail_stack):
    victim = hosted(prefix="spm")
    # A bot: no reverse DNS, a HELO that resolves nowhere, a sender domain that does not exist.
    bot = Client(ip=fresh_ip(), name="[UNAVAILABLE]")
    subject = marked("cheap meds")
    sender = f"promo@nowhere-{victim.name}"

    deliver_from_internet(mail_stack, bot, sender, victim.address("ceo"),
                          message(sender, victim.address("ceo"), subject))

    (junked,) = wait_for(
        lambda: in_folder(mail_stack, victim.address("ceo"), PASSWORD, "Junk", subject))
    assert junked["X-Spam"] == "Yes"
    assert not in_folder(mail_stack, victim.address("ceo"), PASSWORD, "INBOX", subject)


def test_it_refuses_a_softfail_only_where_the_domain_requires_spf_pass(hosted, mail_stack):
    victim = hosted(prefix="spf")
    inbound_policy_update(actor=SYSTEM, domain=victim.domain, greylisting=False)
    victim.reconcile()
    outsider = f"soft-{victim.name}"
    outside_zone(mail_stack, outsider, [
        f'{outsider}. 300 IN TXT "v=spf1 ip4:198.51.100.9 ~all"',
        f"{outsider}. 300 IN MX 10 mx.{outsider}.",
    ])
    server = outside_server(mail_stack, outsider, fresh_ip())
    sender = f"news@{outsider}"
    first = marked("softfail accepted")

    def accepted():  # the settings map reaches Rspamd within its map-watch interval
        try:
            return send_from_internet(mail_stack, server, sender, victim.address("ceo"),
                                      message(sender, victim.address("ceo"), first))
        except smtplib.SMTPDataError as exc:
            assert exc.smtp_code == 451, exc
            return None

    wait_for(accepted, timeout=15, interval=0.5)

    inbound_policy_update(actor=SYSTEM, domain=victim.domain, require_spf=True)
    victim.reconcile()

    def refused():
        try:
            send_from_internet(mail_stack, server, sender, victim.address("ceo"),
                               message(sender, victim.address("ceo"), marked("softfail")))
        except smtplib.SMTPDataError as exc:
            return exc
        return None

    exc = wait_for(refused, timeout=15, interval=0.5)
    assert 500 <= exc.smtp_code < 600
    assert b"SPF pass" in exc.smtp_error


@pytest.mark.parametrize("check, phrase", [("dkim", b"DKIM pass"), ("dmarc", b"DMARC pass")])
def test_it_refuses_unsigned_mail_only_where_the_domain_requires_dkim_or_dmarc_pass(
    hosted, mail_stack, check, phrase
):
    """SPF passes, but nothing is signed (so DMARC cannot pass either): accepted by default,
    refused once the domain asks for the check to pass."""
    victim = hosted(prefix=check[:3] + "r")
    inbound_policy_update(actor=SYSTEM, domain=victim.domain, greylisting=False)
    victim.reconcile()
    outsider = f"unsigned-{victim.name}"
    ip = fresh_ip()
    outside_zone(mail_stack, outsider, [
        f'{outsider}. 300 IN TXT "v=spf1 ip4:{ip} -all"',
        f"{outsider}. 300 IN MX 10 mx.{outsider}.",
    ])
    server = outside_server(mail_stack, outsider, ip)
    sender = f"news@{outsider}"

    def send(subject):
        try:
            send_from_internet(mail_stack, server, sender, victim.address("ceo"),
                               message(sender, victim.address("ceo"), subject))
        except smtplib.SMTPDataError as exc:
            return exc
        return None

    def accepted():  # the settings map reaches Rspamd within its map-watch interval
        exc = send(marked(f"unsigned, {check} not required"))
        assert exc is None or exc.smtp_code == 451, exc
        return exc is None

    wait_for(accepted, timeout=15, interval=0.5)

    inbound_policy_update(actor=SYSTEM, domain=victim.domain, **{f"require_{check}": True})
    victim.reconcile()

    exc = wait_for(lambda: send(marked(f"unsigned, {check} required")), timeout=15,
                   interval=0.5)
    assert 500 <= exc.smtp_code < 600
    assert phrase in exc.smtp_error
