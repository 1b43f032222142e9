"""Greylisting and its circuit breaker, SMTP abuse limits, Junk filing beside the user's own
Sieve filter, learning from Junk moves, and authenticated submission — on the real stack."""

import re
import smtplib

import pytest
import redis

from identity.inbound import collect_from_node
from identity.models import NodeInboundStatus
from mailhost.backend.inbound import GUARD_STATUS
from tests.api.conftest import ApiClient, make_token
from tests.factories import MembershipFactory, OrganisationFactory
from tests.inbound.conftest import PASSWORD
from tests.inbound.support import (
    GTUBE,
    Client,
    deliver_from_internet,
    fresh_ip,
    imap_move,
    in_folder,
    marked,
    message,
    outside_server,
    outside_zone,
    send_from_internet,
)
from tests.security.managesieve import upload_active_script
from tests.stack import make_message, smtp_send, wait_for

pytestmark = [pytest.mark.stack, pytest.mark.django_db]


def _outsider(stack, victim, label: str) -> tuple[Client, str]:
    """An outside domain with SPF for its own server, and that server."""
    domain = f"{label}-{victim.name}"
    ip = fresh_ip()
    outside_zone(stack, domain, [f'{domain}. 300 IN TXT "v=spf1 ip4:{ip} -all"',
                                 f"{domain}. 300 IN MX 10 mx.{domain}."])
    return outside_server(stack, domain, ip), f"news@{domain}"


def test_it_greylists_a_first_attempt_and_accepts_the_retry(hosted, mail_stack):
    victim = hosted(prefix="gry")
    # A sender that does not authenticate (no SPF, no DKIM, no DMARC) and is not known yet.
    sender_domain = f"unknown-{victim.name}"
    outside_zone(mail_stack, sender_domain, [f"{sender_domain}. 300 IN MX 10 mx.{sender_domain}."])
    server = outside_server(mail_stack, sender_domain, fresh_ip())
    sender = f"hello@{sender_domain}"
    mail = message(sender, victim.address("ceo"), marked("greylisted once"))

    with pytest.raises(smtplib.SMTPDataError) as first:
        send_from_internet(mail_stack, server, sender, victim.address("ceo"), mail)
    assert first.value.smtp_code == 451
    assert first.value.smtp_error.startswith(b"4.7.1")

    # The window is MAILHOST_GREYLIST_DELAY_SECONDS (2 s in tests): retry as a real MTA would.
    code, _ = deliver_from_internet(mail_stack, server, sender, victim.address("ceo"), mail)
    assert code == 250


def test_it_fails_open_while_the_resolver_is_down(hosted, mail_stack, stack_node, client):
    victim = hosted(prefix="brk")
    server, sender = _outsider(mail_stack, victim, "wobble")
    mail = message(sender, victim.address("ceo"), marked("dns wobble"))
    status = mail_stack.cfg.path(GUARD_STATUS)
    mail_stack.stop_daemon("unbound")
    try:
        wait_for(lambda: '"breaker_open": true' in status.read_text(), timeout=30)

        def accepted_first_time():  # Rspamd re-reads the bypass map within its watch interval
            try:
                return send_from_internet(mail_stack, server, sender,
                                          victim.address("ceo"), mail)
            except smtplib.SMTPDataError as exc:
                assert exc.smtp_code == 451, exc
                return None

        code, _ = wait_for(accepted_first_time, timeout=20, interval=0.5)
        assert code == 250
        collect_from_node(stack_node)
        node_status = NodeInboundStatus.objects.get(node=stack_node)
        assert node_status.breaker_open
        assert "resolver" in " ".join(node_status.reasons)
        org = victim.domain.organisation
        owner = MembershipFactory(organisation=org, role="viewer").user
        client.force_login(owner)
        page = client.get(f"/mail-admin/{org.slug}/").content.decode()
        assert "Greylisting is failing open" in page
        flow = ApiClient(make_token(org)).get("/inbound/flow").json()
        assert flow["greylisting_fails_open"] and "resolver" in " ".join(flow["reasons"])
        other = ApiClient(make_token(OrganisationFactory())).get("/inbound/flow").json()
        assert not other["greylisting_fails_open"]
    finally:
        mail_stack.start()  # brings the resolver back; the breaker closes again
        wait_for(lambda: '"breaker_open": false' in status.read_text(), timeout=30)


def test_it_limits_recipients_per_message(hosted, mail_stack):
    victim = hosted(prefix="rcp")
    server, sender = _outsider(mail_stack, victim, "many")
    limit = mail_stack.cfg.inbound.max_recipients
    recipients = [f"ceo+{i}@{victim.name}" for i in range(limit + 1)]

    with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        send_from_internet(mail_stack, server, sender, recipients,
                           message(sender, victim.address("ceo"), marked("many")))

    (extra,) = refused.value.recipients.values()
    assert extra[0] == 452 and extra[1].startswith(b"4.5.3")


def test_it_refuses_a_message_over_the_size_limit_declared_or_not(hosted, mail_stack):
    victim = hosted(prefix="big")
    server, sender = _outsider(mail_stack, victim, "huge")
    limit = mail_stack.cfg.message_size_limit
    with smtplib.SMTP(*mail_stack.address("smtp"), timeout=60) as smtp:
        smtp.ehlo("harness.stack.test")
        assert smtp.docmd("XCLIENT", f"ADDR={server.ip} NAME={server.name}")[0] == 220
        smtp.ehlo(server.name)
        assert int(smtp.esmtp_features["size"]) == limit  # advertised in EHLO
        code, text = smtp.mail(sender, [f"SIZE={limit + 1}"])
    assert code == 552 and text.startswith(b"5.3.4")

    # A client that does not declare the size is cut off at the limit, nothing delivered.
    subject = marked("too big")
    body = "x" * 76 + "\r\n"
    oversize = message(sender, victim.address("ceo"), subject,
                       body=body * (limit // len(body) + 1)).as_bytes()
    with pytest.raises(smtplib.SMTPDataError) as refused:
        send_from_internet(mail_stack, server, sender, victim.address("ceo"), oversize)
    assert refused.value.smtp_code == 552
    assert not in_folder(mail_stack, victim.address("ceo"), PASSWORD, "INBOX", subject)


def test_it_rate_limits_connections_per_client_address(hosted, mail_stack):
    """Postfix's anvil counts the client address XCLIENT presents, as it would a real one."""
    victim = hosted(prefix="rat")
    server, _sender = _outsider(mail_stack, victim, "flood")
    limit = mail_stack.cfg.inbound.connection_rate_limit
    replies = []
    for _ in range(limit + 1):
        with smtplib.SMTP(*mail_stack.address("smtp"), timeout=30) as smtp:
            smtp.ehlo("harness.stack.test")
            replies.append(smtp.docmd("XCLIENT", f"ADDR={server.ip} NAME={server.name}"))
            if replies[-1][0] == 220:
                smtp.quit()

    assert all(code == 220 for code, _ in replies[:limit])
    code, text = replies[limit]
    assert code == 421 and text.startswith(b"4.7.0") and b"too many connections" in text


def test_it_files_spam_into_junk_and_still_runs_the_users_own_filter_for_ham(hosted,
                                                                             mail_stack):
    victim = hosted(prefix="usr")
    upload_active_script(mail_stack.address("managesieve"), victim.address("ceo"), PASSWORD,
                         'require ["fileinto", "mailbox"];\n'
                         'if header :contains "Subject" "minutes" {\n'
                         '  fileinto :create "Meetings";\n}\n')
    server, sender = _outsider(mail_stack, victim, "colleague")
    ham = marked("minutes of Tuesday")
    deliver_from_internet(mail_stack, server, sender, victim.address("ceo"),
                          message(sender, victim.address("ceo"), ham))
    bot = Client(ip=fresh_ip(), name="[UNAVAILABLE]")
    spam = marked("minutes cheap meds")
    bot_sender = f"promo@nowhere-{victim.name}"
    deliver_from_internet(mail_stack, bot, bot_sender, victim.address("ceo"),
                          message(bot_sender, victim.address("ceo"), spam))

    wait_for(lambda: in_folder(mail_stack, victim.address("ceo"), PASSWORD, "Meetings", ham))
    wait_for(lambda: in_folder(mail_stack, victim.address("ceo"), PASSWORD, "Junk", spam))
    assert not in_folder(mail_stack, victim.address("ceo"), PASSWORD, "Meetings", spam)


def _learned(stack) -> int:
    match = re.search(r"Messages learned: (\d+)", stack.rspamd_stat())
    return int(match.group(1)) if match else 0


def test_it_learns_spam_when_a_message_is_moved_into_junk(hosted, mail_stack):
    victim = hosted(prefix="lrn")
    server, sender = _outsider(mail_stack, victim, "pushy")
    subject = marked("limited offer")
    body = " ".join(f"word{i} offer discount unsubscribe winner prize" for i in range(20))
    deliver_from_internet(mail_stack, server, sender, victim.address("ceo"),
                          message(sender, victim.address("ceo"), subject, body=body))
    wait_for(lambda: in_folder(mail_stack, victim.address("ceo"), PASSWORD, "INBOX", subject))
    before = _learned(mail_stack)

    imap_move(mail_stack, victim.address("ceo"), PASSWORD, subject, "INBOX", "Junk")

    wait_for(lambda: _learned(mail_stack) > before, timeout=15)


def _learned_ham(stack) -> int:
    """Rspamd's Bayes counter in its Redis (`rspamc stat` refreshes its copy only now and then)."""
    target = stack.cfg.inbound.redis
    client = redis.Redis(host=target.host, port=target.port, db=target.db,
                         password=target.password or None)
    return int(client.hget("RS", "learns_ham") or 0)


def test_it_learns_ham_when_a_message_is_moved_out_of_junk(hosted, mail_stack):
    victim = hosted(prefix="ham")
    bot = Client(ip=fresh_ip(), name="[UNAVAILABLE]")  # unknown rDNS: scored into Junk
    sender = f"promo@nowhere-{victim.name}"
    subject = marked("cheap meds newsletter you did ask for")
    body = " ".join(f"word{i} newsletter issue weekly digest reading list" for i in range(20))
    deliver_from_internet(mail_stack, bot, sender, victim.address("ceo"),
                          message(sender, victim.address("ceo"), subject, body=body))
    wait_for(lambda: in_folder(mail_stack, victim.address("ceo"), PASSWORD, "Junk", subject))
    before = _learned_ham(mail_stack)

    imap_move(mail_stack, victim.address("ceo"), PASSWORD, subject, "Junk", "INBOX")

    wait_for(lambda: _learned_ham(mail_stack) > before, timeout=15)


def test_it_never_greylists_or_refuses_a_logins_mail_to_its_own_domain(hosted, mail_stack):
    own = hosted(prefix="sub", mailboxes=("bob", "carol"))
    bob, carol = own.address("bob"), own.address("carol")
    subject = marked("gtube from a colleague")
    body = f"Test pattern:\n{GTUBE}\n"
    stranger = Client(ip=fresh_ip(), name="[UNAVAILABLE]")
    with pytest.raises(smtplib.SMTPDataError) as from_outside:  # the same mail from outside
        send_from_internet(mail_stack, stranger, bob, carol, make_message(bob, carol, subject,
                                                                          body))
    assert from_outside.value.smtp_code >= 500

    code, _ = smtp_send(mail_stack, "submission", bob, carol,
                        make_message(bob, carol, subject, body), login=(bob, PASSWORD))

    assert code == 250  # at the first attempt: never greylisted, never refused as spam
    (delivered,) = wait_for(lambda: in_folder(mail_stack, carol, PASSWORD, "INBOX", subject))
    assert delivered["X-Spam"] is None
