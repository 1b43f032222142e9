"""Forwarding that survives DMARC, against the real stack: an alias forwards to an address on
the tests' internet (the fake MX); the copy leaves with an SRS return path and an ARC seal that
verifies with the key the portal publishes; bounces to the SRS address reach the original
sender, across a secret rotation; forged and expired SRS addresses are refused."""

import email
import smtplib
import time

import dkim
import pytest

from identity.records import zone_line
from identity.selectors import domain_records
from mailboxes.models import Mailbox
from mailboxes.services import alias_create, mailbox_set_forwarding
from mailhost.backend.forwarding import srs0_address, srs_timestamp
from mailhost.crypto import decrypt
from nodes.reconcile import reconcile_incremental
from routing.models import SrsSecret
from routing.srs import forwarding_ensure, srs_rotate
from tenants.access import SYSTEM
from tests.delivery.support import internet_address
from tests.stack import make_message, smtp_send, unique_domain, wait_for

pytestmark = pytest.mark.stack


def _today() -> int:
    return int(time.time()) // 86400


def _signing_secret() -> str:
    return decrypt(SrsSecret.objects.get(signing=True).secret_encrypted).decode()


def _restarted(stack, before: int | None) -> bool:
    pid = stack.pid("postsrsd")
    return pid is not None and pid != before and stack.status()["postsrsd"] is not None


def _apply(node, stack) -> None:
    """Reconcile and wait until postsrsd runs on the new secrets file."""
    before = stack.pid("postsrsd")
    reconcile_incremental(node)
    wait_for(lambda: _restarted(stack, before), timeout=20)


def _arc_dns(knot, hosted):
    """The portal's record set for the domain, the ARC key among them, served by a real DNS
    server; dkimpy's dnsfunc asks it."""
    import dns.message
    import dns.query

    (arc,) = [r for r in domain_records(hosted.domain) if r.key == "arc"]
    zone = arc.name.split("._domainkey.", 1)[1]
    server = knot(zones={zone: zone_line(arc, ttl=300)})

    def txt(name: bytes, timeout: int = 5) -> bytes | None:
        reply = dns.query.udp(dns.message.make_query(name.decode(), "TXT"), "127.0.0.1",
                              port=server.port, timeout=timeout)
        for rrset in reply.answer:
            for rdata in rrset:
                return b"".join(rdata.strings)
        return None

    return txt


@pytest.fixture
def forwarding(stack_node, mail_stack, hosted_domains, internet):
    """An alias of a hosted domain that forwards to the internet, with the portal's SRS secret
    and ARC key live on the node."""
    forwarding_ensure(actor=SYSTEM)
    _apply(stack_node, mail_stack)
    wait_for(lambda: mail_stack.pid("rspamd") is not None, timeout=30)
    domain = hosted_domains(prefix="fw")
    target = internet_address("friend")
    alias_create(actor=SYSTEM, domain=domain.domain, local_part="fwd", destinations=[target])
    reconcile_incremental(stack_node)
    return domain, target


def _forward(stack, internet, domain, target, sender: str, subject: str):
    message = make_message(sender, domain.address("fwd"), subject)
    # Rspamd may still be restarting on its new ARC config: a 4xx is retried by the sender.
    wait_for(lambda: _try_send(stack, sender, domain.address("fwd"), message), timeout=30)
    try:
        (received,) = wait_for(lambda: [m for m in internet.received_by(target)
                                        if subject.encode() in m.data], timeout=30)
    except AssertionError:
        raise AssertionError(f"not forwarded:\n{stack.log_tails(60)}") from None
    return received


def _try_send(stack, sender, rcpt, message) -> bool:
    try:
        smtp_send(stack, "smtp", sender, rcpt, message)
    except (smtplib.SMTPDataError, smtplib.SMTPRecipientsRefused) as exc:
        if str(getattr(exc, "smtp_code", "4"))[:1] == "4":
            return False
        raise
    return True


def test_it_forwards_with_an_srs_return_path_and_a_verifying_arc_seal(
    forwarding, mail_stack, internet, knot
):
    domain, target = forwarding
    sender = f"alice@{unique_domain('orig').removesuffix('.test')}.example"
    received = _forward(mail_stack, internet, domain, target, sender, "forward me")

    srs = srs0_address(_signing_secret(), sender, day=_today(), srs_domain=mail_stack.cfg.srs)
    # Postfix folds the address to lower case; SRS hashes are compared without case.
    assert received.mail_from == srs.lower()
    assert received.mail_from.endswith(f"@{mail_stack.cfg.hostname}")
    parsed = email.message_from_bytes(received.data)
    assert parsed["From"] == sender  # the header is the author's, untouched
    (seal,) = parsed.get_all("ARC-Seal")
    assert "i=1" in seal and f"d={mail_stack.cfg.srs}" in seal
    # The results the MX listener recorded, not the loopback forwarding hop's.
    aar = " ".join(parsed["ARC-Authentication-Results"].split())
    assert aar.startswith(f"i=1; {mail_stack.cfg.hostname};")
    cv, _results, comment = dkim.arc_verify(received.data, dnsfunc=_arc_dns(
        knot, domain))
    assert cv == dkim.CV_Pass, comment


def test_it_delivers_a_bounce_to_the_srs_address_back_to_the_original_sender(
    forwarding, mail_stack, internet
):
    domain, target = forwarding
    sender = f"bob@{unique_domain('orig').removesuffix('.test')}.example"
    received = _forward(mail_stack, internet, domain, target, sender, "will bounce")

    smtp_send(mail_stack, "smtp", "", received.mail_from,
              make_message(f"mailer-daemon@{target.split('@')[1]}", received.mail_from,
                           "Undelivered Mail Returned to Sender"))
    (bounce,) = wait_for(lambda: internet.received_by(sender), timeout=30)
    assert bounce.mail_from in ("", "<>")  # the null sender, as aiosmtpd reports it
    assert b"Undelivered Mail Returned to Sender" in bounce.data


def test_it_accepts_bounces_signed_with_the_old_secret_after_rotation_and_refuses_forgeries(
    forwarding, stack_node, mail_stack, internet
):
    domain, target = forwarding
    sender = f"carol@{unique_domain('orig').removesuffix('.test')}.example"
    old = _forward(mail_stack, internet, domain, target, sender, "before rotation").mail_from

    srs_rotate(actor=SYSTEM)
    _apply(stack_node, mail_stack)
    new = srs0_address(_signing_secret(), sender, day=_today(), srs_domain=mail_stack.cfg.srs)
    assert new != old
    # New forwards are signed with the new secret.
    fresh = _forward(mail_stack, internet, domain, target, sender, "after rotation")
    assert fresh.mail_from == new.lower()

    smtp_send(mail_stack, "smtp", "", old, make_message("mailer-daemon@x.example", old, "old"))
    wait_for(lambda: [m for m in internet.received_by(sender) if b"Subject: old" in m.data],
             timeout=30)

    unknown = srs0_address("bm90IG91ciBzZWNyZXQgYXQgYWxs", sender, day=_today(),
                           srs_domain=mail_stack.cfg.srs)
    expired = srs0_address(_signing_secret(), sender, day=_today() - 30,
                           srs_domain=mail_stack.cfg.srs)
    tampered = old.replace(sender.split("@")[0], "mallory", 1)
    for forged in (unknown, expired, tampered):
        with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
            smtp_send(mail_stack, "smtp", "", forged, make_message("x@y.example", forged, "f"))
        ((code, text),) = refused.value.recipients.values()
        assert code == 550, (forged, text)


def test_it_never_relays_through_the_srs_domain_to_an_address_of_the_attackers_choice(
    forwarding, mail_stack, internet
):
    """An attacker who wants us to relay to victim@… writes the SRS address himself: without
    the secret, every form is refused at RCPT, and nothing reaches the victim."""
    victim = f"victim@{unique_domain('prey').removesuffix('.test')}.example"
    local, _, domain = victim.partition("@")
    srs = mail_stack.cfg.srs
    attempts = [
        f"SRS0=AAAA=AA={domain}={local}@{srs}",
        f"SRS0=AbCd={srs_timestamp(_today())}={domain}={local}@{srs}",
        f"SRS1=AAAA=other.example==AAAA=AA={domain}={local}@{srs}",
        f"{local}@{srs}",
    ]
    for address in attempts:
        with pytest.raises(smtplib.SMTPRecipientsRefused):
            smtp_send(mail_stack, "smtp", "spammer@spam.example", address,
                      make_message("spammer@spam.example", address, "relay me"))
    assert internet.received_by(victim) == []  # refused at RCPT: nothing was queued


def test_it_leaves_a_mailboxs_sieve_forward_with_the_mailboxs_own_return_path(
    forwarding, stack_node, mail_stack, internet
):
    """A mailbox's own forward (Sieve redirect) re-enters on the internal listener with the
    mailbox as envelope sender (sieve_redirect_envelope_from = recipient: a forged hosted
    sender must never be signed for, tests/security/test_sender_binding.py). SPF passes for
    our domain as it is, bounces go to the mailbox that set the forward, and our DKIM
    signature is the mailbox's domain's: it takes neither SRS nor the forwarding listener."""
    domain, _ = forwarding
    target = internet_address("sieve")
    mailbox = Mailbox.objects.get(domain=domain.domain, local_part="ceo")
    mailbox_set_forwarding(actor=SYSTEM, mailbox=mailbox, forward_to=[target], keep_copy=True)
    reconcile_incremental(stack_node)
    sender = f"dave@{unique_domain('orig').removesuffix('.test')}.example"
    message = make_message(sender, domain.address("ceo"), "sieve forward")
    wait_for(lambda: _try_send(mail_stack, sender, domain.address("ceo"), message), timeout=30)
    (received,) = wait_for(lambda: internet.received_by(target), timeout=30)

    assert received.mail_from == domain.address("ceo")
    parsed = email.message_from_bytes(received.data)
    assert f"d={domain.name};" in " ".join(parsed["DKIM-Signature"].split())
    assert parsed["ARC-Seal"] is None


def test_it_never_seals_authentication_results_the_sender_wrote(forwarding, mail_stack, internet):
    """The seal vouches for what our MX found: a sender who writes his own "dmarc=pass" in
    the name of our host gets none of it into the ARC-Authentication-Results."""
    domain, target = forwarding
    sender = f"ceo@{unique_domain('bank').removesuffix('.test')}.example"
    forged = (f"{mail_stack.cfg.hostname}; spf=pass smtp.mailfrom={sender}; "
              f"dkim=pass header.d={sender.split('@')[1]}; dmarc=pass header.from="
              f"{sender.split('@')[1]}")
    message = make_message(sender, domain.address("fwd"), "wire the money")
    message["Authentication-Results"] = forged
    wait_for(lambda: _try_send(mail_stack, sender, domain.address("fwd"), message), timeout=30)
    (received,) = wait_for(lambda: internet.received_by(target), timeout=30)

    parsed = email.message_from_bytes(received.data)
    aar = " ".join(parsed["ARC-Authentication-Results"].split())
    assert "pass" not in aar, aar
    assert all("dmarc=pass" not in value for value in parsed.get_all("Authentication-Results"))
