"""Attacks on the From: line (issue 10, findings 1 and 2), played against the real stack.

Organisation B's user (bob) tries to get mail delivered that claims to be from organisation A
and carries A's DKIM signature: on submission (587 and 465) with a null or his own envelope
sender, through Sender:, several From: fields or malformed ones; through a Sieve script he
uploads over ManageSieve (`vacation :from`, `vacation :mime`, `notify :from`, `redirect`);
through the port-25 listener from a loopback client and through sendmail. What A's people
would see is asserted: the SMTP answer, what reaches their INBOX, and the DKIM d= of it,
verified with dkimpy against the keys the portal publishes.
"""

import os
import signal
import smtplib
import subprocess

import pytest

from tests.security.managesieve import upload_active_script
from tests.security.two_tenants import (
    PASSWORD,
    forget_rows,
    from_fields,
    make_tenants,
    nothing_queued_for,
    refused,
    send_until_signed,
    signing_domains,
    subject,
    verified,
)
from tests.stack import make_message, smtp_send, wait_for

pytestmark = [pytest.mark.stack, pytest.mark.django_db]
SUBMISSION_PORTS = ["submission", "submissions"]


@pytest.fixture
def tenants(stack_node, mail_stack):
    tenants = make_tenants(stack_node, mail_stack)
    yield tenants
    forget_rows(mail_stack, tenants.a, tenants.b)


def assert_refused_5_7_1(excinfo) -> str:
    code, text = refused(excinfo.value)
    assert code == 550 and text.startswith("5.7.1"), (code, text)
    return text


def assert_nothing_delivered(tenants, to: str, title: str) -> None:
    """Whatever Postfix accepted has been delivered, and none of it is this message."""
    wait_for(lambda: nothing_queued_for(tenants))
    assert tenants.inbox(to, title) == []


# --- submission (587 STARTTLS, 465 implicit TLS) --------------------------------------------


@pytest.mark.parametrize("port", SUBMISSION_PORTS)
def test_it_refuses_a_null_sender_with_another_tenants_from(tenants, port):
    title = subject("null sender, A's From")
    message = make_message(tenants.alice, tenants.ceo, title)
    with pytest.raises(smtplib.SMTPDataError) as excinfo:
        tenants.submit(port, tenants.bob, "", tenants.ceo, message)
    assert tenants.alice in assert_refused_5_7_1(excinfo)
    assert_nothing_delivered(tenants, tenants.ceo, title)


@pytest.mark.parametrize("port", SUBMISSION_PORTS)
def test_it_refuses_its_own_envelope_with_another_tenants_from(tenants, port):
    title = subject("own envelope, A's From")
    message = make_message(tenants.alice, tenants.ceo, title)
    with pytest.raises(smtplib.SMTPDataError) as excinfo:
        tenants.submit(port, tenants.bob, tenants.bob, tenants.ceo, message)
    assert_refused_5_7_1(excinfo)
    assert_nothing_delivered(tenants, tenants.ceo, title)


@pytest.mark.parametrize("port", SUBMISSION_PORTS)
def test_it_refuses_another_tenants_sender_header(tenants, port):
    title = subject("A's Sender")
    message = make_message(tenants.bob, tenants.ceo, title)
    message["Sender"] = tenants.alice
    with pytest.raises(smtplib.SMTPDataError) as excinfo:
        tenants.submit(port, tenants.bob, "", tenants.ceo, message)
    assert "Sender" in assert_refused_5_7_1(excinfo)
    assert_nothing_delivered(tenants, tenants.ceo, title)


@pytest.mark.parametrize(
    "from_lines",
    [
        ["From: {bob}", "From: {alice}"],  # two fields: which one a reader shows is anyone's guess
        ["From: {alice}", "From: {bob}"],
        ["From: {bob}, {alice}"],  # a list of authors
        ["From: Bob <{bob}>, Alice <{alice}>"],
        ["From: {alice} <{bob}>"],  # an unquoted address as display name
        ["From: <{bob}> {alice}"],
        ["From: {bob} ({alice})"],  # a comment holding an address
        ["From: Team: {bob}, {alice};"],  # a group
        ["From: \"{alice}\"@evil.test <{bob}>"],
        ["From: {bob}\r\nFrom : {alice}"],  # obsolete syntax: space before the colon
    ],
    ids=["two-fields", "two-fields-reversed", "list", "named-list", "address-as-name",
         "trailing-address", "comment", "group", "quoted-local", "obs-colon"],
)
def test_it_refuses_several_or_malformed_from_fields(tenants, from_lines):
    title = subject("ambiguous From")
    headers = "\r\n".join(line.format(bob=tenants.bob, alice=tenants.alice) for line in from_lines)
    raw = (f"{headers}\r\nTo: {tenants.ceo}\r\nSubject: {title}\r\n"
           f"Message-ID: <{title.split()[-1]}@att.test>\r\n\r\nHello.\r\n").encode()
    with pytest.raises(smtplib.SMTPDataError) as excinfo:
        tenants.submit("submission", tenants.bob, tenants.bob, tenants.ceo, raw)
    assert_refused_5_7_1(excinfo)
    assert_nothing_delivered(tenants, tenants.ceo, title)


@pytest.mark.parametrize("port", SUBMISSION_PORTS)
@pytest.mark.parametrize("envelope", ["null", "own"])
@pytest.mark.parametrize("author", ["own-address", "own-alias"])
def test_it_delivers_from_an_owned_address_signed_for_the_senders_own_domain(
    tenants, port, envelope, author
):
    address = tenants.bob if author == "own-address" else tenants.sales
    sender = "" if envelope == "null" else tenants.bob
    raw = send_until_signed(tenants, port, tenants.bob, sender, tenants.ceo,
                            f"Bob <{address}>", "owned From")
    assert signing_domains(raw) == [tenants.b]
    assert verified(tenants, raw)


def test_it_leaves_reply_to_free(tenants):
    # Reply-To says where answers go, not who wrote the message: a user may point it anywhere.
    raw = send_until_signed(tenants, "submission", tenants.bob, tenants.bob, tenants.ceo,
                            tenants.bob, "reply elsewhere", Reply_To=tenants.alice)
    assert signing_domains(raw) == [tenants.b] and verified(tenants, raw)


# --- Sieve, uploaded by the attacker over ManageSieve ---------------------------------------


def upload(tenants, script: str) -> None:
    upload_active_script(tenants.stack.address("managesieve"), tenants.bob, PASSWORD, script)


def mail_bob_from_the_ceo(tenants, title: str) -> None:
    """A's CEO writes to bob; once bob has it, his script has run (Pigeonhole sends vacation
    replies, notifications and redirects during delivery) and whatever it sent is queued."""
    message = make_message(tenants.ceo, tenants.bob, title)
    tenants.submit("submission", tenants.ceo, tenants.ceo, tenants.bob, message)
    wait_for(lambda: tenants.inbox(tenants.bob, title))
    wait_for(lambda: nothing_queued_for(tenants))


def assert_nothing_signed_for_a(tenants, to: str, marker: str) -> None:
    for raw in tenants.inbox(to, marker):
        assert tenants.a not in signing_domains(raw), raw.decode(errors="replace")
        assert not any(tenants.a in field for field in from_fields(raw)), from_fields(raw)


def test_it_sends_no_vacation_reply_from_another_tenants_address(tenants):
    reply_subject = subject("away")
    upload(tenants, 'require ["vacation"];\n'
                    f'vacation :days 1 :from "security@{tenants.a}" :subject "{reply_subject}" '
                    '"Away.";\n')
    mail_bob_from_the_ceo(tenants, subject("to bob, vacation :from A"))
    assert_nothing_signed_for_a(tenants, tenants.ceo, reply_subject)


def test_it_still_sends_a_vacation_reply_from_the_users_own_address(tenants):
    # Pigeonhole replies once a day per sender, so first make sure OpenDKIM has re-read its
    # tables for these new domains (it does so asynchronously after the reconcile).
    send_until_signed(tenants, "submission", tenants.bob, tenants.bob, tenants.ceo, tenants.bob,
                      "warm-up")
    reply_subject = subject("away")
    upload(tenants, 'require ["vacation"];\n'
                    f'vacation :days 1 :from "{tenants.bob}" :subject "{reply_subject}" '
                    '"Away.";\n')
    mail_bob_from_the_ceo(tenants, subject("to bob, own vacation"))
    (reply,) = wait_for(lambda: tenants.inbox(tenants.ceo, reply_subject))
    assert signing_domains(reply) == [tenants.b] and verified(tenants, reply)
    assert b"Auto-Submitted: auto-replied" in reply


def test_it_refuses_a_vacation_mime_header_injection(tenants):
    # :mime content becomes header lines of the reply: a second From, a Sender and an
    # "Auto-Submitted: no" that tries to make the reply look hand-written.
    reply_subject = subject("away")
    upload(tenants, 'require ["vacation"];\n'
                    f'vacation :days 1 :mime :from "{tenants.bob}" :subject "{reply_subject}" '
                    "text:\n"
                    "Auto-Submitted: no\r\n"
                    f"From: security@{tenants.a}\r\n"
                    f"Sender: security@{tenants.a}\r\n"
                    "Content-Type: text/plain\r\n\r\nAway.\r\n.\n;\n")
    mail_bob_from_the_ceo(tenants, subject("to bob, vacation :mime"))
    assert_nothing_signed_for_a(tenants, tenants.ceo, reply_subject)


def test_it_sends_no_notification_from_another_tenants_address(tenants):
    upload(tenants, 'require ["enotify"];\n'
                    f'notify :from "security@{tenants.a}" "mailto:{tenants.ceo}";\n')
    title = subject("to bob, notify :from A")
    mail_bob_from_the_ceo(tenants, title)
    assert_nothing_signed_for_a(tenants, tenants.ceo, title)


@pytest.mark.parametrize("envelope", ["null", "forged"])
def test_it_never_signs_a_redirected_forgery_for_the_forged_domain(tenants, envelope):
    # Mail reaches bob over port 25 claiming to be from A's CEO (with a null envelope sender,
    # or A's CEO's address forged there too); bob's script forwards it to A's CEO. If it leaves
    # at all, it may be signed only for bob's domain.
    upload(tenants, f'require ["copy"];\nredirect :copy "{tenants.ceo}";\n')
    title = subject("forged A, redirected")
    sender = "" if envelope == "null" else tenants.ceo
    smtp_send(tenants.stack, "smtp", sender, tenants.bob,
              make_message(f"CEO <{tenants.ceo}>", tenants.bob, title))
    wait_for(lambda: tenants.inbox(tenants.bob, title))
    wait_for(lambda: nothing_queued_for(tenants))
    for raw in tenants.inbox(tenants.ceo, title):
        assert tenants.a not in signing_domains(raw)
        assert signing_domains(raw) == [tenants.b] and verified(tenants, raw)
    if envelope == "forged":  # a forward with an envelope of bob's own is still delivered
        assert len(tenants.inbox(tenants.ceo, title)) == 1


# --- paths around the policy ----------------------------------------------------------------


def test_it_does_not_sign_what_the_mx_receives_from_a_loopback_client(tenants):
    title = subject("port 25 from loopback")
    smtp_send(tenants.stack, "smtp", tenants.alice, tenants.carol,
              make_message(tenants.alice, tenants.carol, title))
    (raw,) = wait_for(lambda: tenants.inbox(tenants.carol, title))
    assert signing_domains(raw) == []


def test_it_does_not_sign_what_sendmail_injects(tenants):
    title = subject("sendmail")
    message = make_message(tenants.alice, tenants.carol, title).as_bytes()
    subprocess.run(
        ["/usr/sbin/sendmail", "-C", str(tenants.stack.postfix_dir), "-f", tenants.alice,
         tenants.carol],
        input=message, check=True, timeout=30,
    )
    (raw,) = wait_for(lambda: tenants.inbox(tenants.carol, title), timeout=30)
    assert signing_domains(raw) == []


def test_it_holds_mail_back_while_the_policy_is_down(tenants):
    # A dead policy must never mean unchecked mail: Postfix answers 4xx (milter_default_action
    # = tempfail), and `start()` brings the policy back like any other daemon of the stack.
    stack = tenants.stack
    pid = stack.pid("sender-policy")
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: stack.pid("sender-policy") is None)
    title = subject("policy down")
    try:
        # Postfix finds the milter gone when the session starts and answers 4xx from there on.
        with pytest.raises(smtplib.SMTPResponseException) as excinfo:
            tenants.submit("submission", tenants.bob, "", tenants.ceo,
                           make_message(tenants.alice, tenants.ceo, title))
        assert 400 <= excinfo.value.smtp_code < 500
    finally:
        stack.start()
    assert stack.pid("sender-policy") not in (None, pid)
    with pytest.raises(smtplib.SMTPDataError) as excinfo:
        tenants.submit("submission", tenants.bob, "", tenants.ceo,
                       make_message(tenants.alice, tenants.ceo, title))
    assert_refused_5_7_1(excinfo)
    assert_nothing_delivered(tenants, tenants.ceo, title)
