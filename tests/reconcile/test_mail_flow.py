"""Done-when of the reconcile issue, against the real Postfix, Dovecot and OpenDKIM.

Every change goes through the service layer; a real Celery worker applies it to the running
stack; real SMTP and IMAP clients check the result.
"""

import smtplib
import time

import dkim
import pytest

from identity.models import DkimKey
from mailboxes import services
from mailboxes.models import Mailbox
from mailhost.passwords import generate_password
from nodes.models import MailNode
from tenants.access import SYSTEM
from tests.factories import OrganisationFactory
from tests.stack import (
    fetch_inbox,
    fetch_inbox_raw,
    imap_login,
    make_message,
    smtp_send,
    unique_domain,
    wait_for,
)

pytestmark = [pytest.mark.stack, pytest.mark.embedded, pytest.mark.django_db(transaction=True)]


def rcpt_accepted(stack, address: str) -> bool:
    with smtplib.SMTP(*stack.address("smtp"), timeout=5) as client:
        client.ehlo("sender.example")
        client.mail("someone@sender.example")
        code, _ = client.rcpt(address)
        return code == 250


def wait_live(mailbox: Mailbox, timeout: float = 10.0) -> None:
    # Generous: the 2-second promise is asserted by its own test; this only orders steps.
    wait_for(
        lambda: (
            MailNode.objects.get(pk=mailbox.domain.node_id).applied_revision
            >= Mailbox.objects.get(pk=mailbox.pk).revision
        ),
        timeout,
    )


@pytest.fixture
def domain(reconcile_worker):
    org = OrganisationFactory()
    return services.domain_create(actor=SYSTEM, organisation=org, name=unique_domain("flow"))


def new_mailbox(domain, local_part, **kwargs):
    password = kwargs.pop("password", generate_password())
    mailbox, _ = services.mailbox_create(
        actor=SYSTEM, domain=domain, local_part=local_part, password=password, **kwargs
    )
    return mailbox, password


def test_it_makes_a_new_mailbox_live_within_two_seconds(domain, mail_stack):
    started = time.monotonic()
    mailbox, password = new_mailbox(domain, "alice")
    wait_for(lambda: imap_login(mail_stack, mailbox.address, password), timeout=2)
    wait_for(lambda: rcpt_accepted(mail_stack, mailbox.address), timeout=2)
    assert time.monotonic() - started < 2


def test_it_delivers_submitted_mail_dkim_signed_with_the_active_key(domain, mail_stack):
    alice, alice_pw = new_mailbox(domain, "alice")
    bob, bob_pw = new_mailbox(domain, "bob")
    wait_live(bob)
    message = make_message(alice.address, bob.address, "signed hello")
    smtp_send(
        mail_stack,
        "submission",
        alice.address,
        bob.address,
        message,
        login=(alice.address, alice_pw),
    )
    (raw,) = wait_for(lambda: fetch_inbox_raw(mail_stack, bob.address, bob_pw), timeout=10)
    key = DkimKey.objects.get(domain=domain, state="active")
    assert f"s={key.selector}".encode() in raw and f"d={domain.name}".encode() in raw

    def dns(name, timeout=5):
        return key.txt_value.encode() if name.decode().rstrip(".") == key.dns_name else None

    assert dkim.verify(raw, dnsfunc=dns)


def test_it_delivers_through_aliases_and_the_catch_all(domain, mail_stack):
    alice, alice_pw = new_mailbox(domain, "alice")
    bob, bob_pw = new_mailbox(domain, "bob")
    services.alias_create(
        actor=SYSTEM, domain=domain, local_part="info", destinations=[alice.address]
    )
    services.alias_create(
        actor=SYSTEM, domain=domain, local_part="team", destinations=[alice.address, bob.address]
    )
    catch_all = services.alias_create(
        actor=SYSTEM, domain=domain, local_part="*", destinations=[bob.address]
    )
    wait_for(lambda: MailNode.objects.get().applied_revision >= catch_all.revision, 5)
    for rcpt, subject in [
        ("info", "to info"),
        ("team", "to team"),
        ("nobody", "to nobody"),
        ("alice", "to alice"),
    ]:
        address = f"{rcpt}@{domain.name}"
        smtp_send(
            mail_stack,
            "smtp",
            "ext@sender.example",
            address,
            make_message("ext@sender.example", address, subject),
        )
    expected_alice, expected_bob = {"to info", "to team", "to alice"}, {"to team", "to nobody"}
    wait_for(lambda: len(fetch_inbox(mail_stack, alice.address, alice_pw)) == 3, timeout=10)
    wait_for(lambda: len(fetch_inbox(mail_stack, bob.address, bob_pw)) == 2, timeout=10)
    assert {
        m["Subject"] for m in fetch_inbox(mail_stack, alice.address, alice_pw)
    } == expected_alice
    assert {m["Subject"] for m in fetch_inbox(mail_stack, bob.address, bob_pw)} == expected_bob


def test_it_queues_a_forwarder_to_an_external_domain_for_relay(domain, mail_stack):
    alias = services.alias_create(
        actor=SYSTEM, domain=domain, local_part="fwd", destinations=["someone@outside.example"]
    )
    wait_for(lambda: MailNode.objects.get().applied_revision >= alias.revision, 5)
    address = f"fwd@{domain.name}"
    smtp_send(
        mail_stack,
        "smtp",
        "ext@sender.example",
        address,
        make_message("ext@sender.example", address, "forward me"),
    )

    # Postfix hands the forward to its SMTP client (not LMTP): what happens next depends on the
    # outside world this machine cannot reach (deferred, or bounced at once when the resolver
    # answers NXDOMAIN), so the proof is the delivery attempt in the log, not the queue.
    def relay_attempt():
        log = mail_stack.log_file("postfix").read_text(errors="replace")
        return [
            line
            for line in log.splitlines()
            if "to=<someone@outside.example>" in line and f"orig_to=<{address}>" in line
        ]

    attempts = wait_for(relay_attempt, timeout=30)
    assert all("status=" in line and "lmtp" not in line for line in attempts), attempts


def test_it_refuses_open_relay_and_sending_as_someone_else(domain, mail_stack):
    alice, alice_pw = new_mailbox(domain, "alice")
    bob, _ = new_mailbox(domain, "bob")
    wait_live(bob)
    with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        smtp_send(
            mail_stack,
            "smtp",
            "spammer@sender.example",
            "victim@outside.example",
            make_message("spammer@sender.example", "victim@outside.example", "relay?"),
        )
    assert 500 <= refused.value.recipients["victim@outside.example"][0] < 600
    with pytest.raises((smtplib.SMTPSenderRefused, smtplib.SMTPRecipientsRefused)) as excinfo:
        smtp_send(
            mail_stack,
            "submission",
            bob.address,
            "x@outside.example",
            make_message(bob.address, "x@outside.example", "spoof"),
            login=(alice.address, alice_pw),
        )
    assert "not owned" in str(excinfo.value)


def test_it_applies_the_mailbox_lifecycle(domain, mail_stack):
    mailbox, password = new_mailbox(domain, "carol")
    wait_for(lambda: imap_login(mail_stack, mailbox.address, password), timeout=2)
    assert not imap_login(mail_stack, mailbox.address, password + "x")

    services.mailbox_set_status(actor=SYSTEM, mailbox=mailbox, status="suspended")
    wait_for(lambda: not imap_login(mail_stack, mailbox.address, password), timeout=2)
    assert rcpt_accepted(mail_stack, mailbox.address)  # suspended still receives

    services.mailbox_set_status(actor=SYSTEM, mailbox=mailbox, status="disabled")
    wait_for(lambda: not rcpt_accepted(mail_stack, mailbox.address), timeout=2)
    assert not imap_login(mail_stack, mailbox.address, password)

    services.mailbox_set_status(actor=SYSTEM, mailbox=mailbox, status="active")
    wait_for(lambda: imap_login(mail_stack, mailbox.address, password), timeout=2)
    new_password = generate_password()
    services.mailbox_set_password(actor=SYSTEM, mailbox=mailbox, password=new_password)
    wait_for(lambda: imap_login(mail_stack, mailbox.address, new_password), timeout=2)
    assert not imap_login(mail_stack, mailbox.address, password)


def test_it_archives_deleted_mail_restores_it_and_renames_without_moving(domain, mail_stack):
    mailbox, password = new_mailbox(domain, "dave")
    wait_live(mailbox)
    smtp_send(
        mail_stack,
        "smtp",
        "ext@sender.example",
        mailbox.address,
        make_message("ext@sender.example", mailbox.address, "keep me"),
    )
    wait_for(lambda: fetch_inbox(mail_stack, mailbox.address, password), timeout=10)
    home = mail_stack.cfg.mail_root / str(mailbox.home_id)

    services.mailbox_delete(actor=SYSTEM, mailbox=mailbox)
    wait_for(lambda: not rcpt_accepted(mail_stack, mailbox.address), timeout=2)
    assert not imap_login(mail_stack, mailbox.address, password)
    wait_for(lambda: not home.exists(), timeout=2)
    assert (mail_stack.cfg.state_dir / "archive" / str(mailbox.home_id)).is_dir()

    services.mailbox_restore(actor=SYSTEM, mailbox=mailbox)
    wait_for(lambda: imap_login(mail_stack, mailbox.address, password), timeout=2)
    assert [m["Subject"] for m in fetch_inbox(mail_stack, mailbox.address, password)] == ["keep me"]

    services.mailbox_rename(actor=SYSTEM, mailbox=mailbox, local_part="david")
    renamed = f"david@{domain.name}"
    wait_for(lambda: imap_login(mail_stack, renamed, password), timeout=2)
    assert [m["Subject"] for m in fetch_inbox(mail_stack, renamed, password)] == ["keep me"]
    assert home.is_dir()
    assert not imap_login(mail_stack, f"dave@{domain.name}", password)


def test_it_never_signs_for_another_tenants_domain_named_only_in_the_header(domain, mail_stack):
    """A From: line the login may not send as is refused before the signer sees it (the
    sender policy; tests/security/test_sender_binding.py plays the attacks in full)."""
    other = services.domain_create(
        actor=SYSTEM, organisation=OrganisationFactory(), name=unique_domain("victim")
    )
    alice, alice_pw = new_mailbox(domain, "alice")
    bob, bob_pw = new_mailbox(domain, "bob")
    wait_live(bob)
    forged = make_message(f"ceo@{other.name}", bob.address, "forged header")
    with pytest.raises(smtplib.SMTPDataError) as excinfo:
        smtp_send(
            mail_stack,
            "submission",
            alice.address,
            bob.address,
            forged,
            login=(alice.address, alice_pw),
        )
    assert excinfo.value.smtp_code == 550 and excinfo.value.smtp_error.startswith(b"5.7.1")
    assert fetch_inbox_raw(mail_stack, bob.address, bob_pw) == []
