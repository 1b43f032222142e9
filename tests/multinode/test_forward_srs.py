"""Forwarded mail between nodes keeps SRS (issue 19): an alias on node A whose target is a
mailbox on node B. A copy of an outside sender's message reaches B with an SRS return path in
A's SRS domain, as a copy forwarded to the internet would (mailhost/backend/peers.py: mail for
another node's domain takes A's forwarding listener, then leaves for B); A's own users' mail
to B keeps its sender. What is checked is what B's mailbox holds, read over IMAP."""

import smtplib
import time

import pytest

from mailboxes import services
from mailhost.backend.forwarding import srs0_address
from mailhost.backend.peers import PEER_FILTER
from mailhost.crypto import decrypt
from mailhost.passwords import generate_password
from routing.models import SrsSecret
from routing.srs import forwarding_ensure
from tenants.access import SYSTEM
from tests.factories import OrganisationFactory
from tests.multinode.conftest import NODE_B
from tests.stack import applied, fetch_inbox, make_message, smtp_send, unique_domain, wait_for

pytestmark = [pytest.mark.stack, pytest.mark.django_db(transaction=True)]


def _try_send(stack, port, sender, rcpt, message, login=None) -> bool:
    """One attempt; a 4xx (Rspamd or postsrsd still starting) is retried by the caller."""
    try:
        smtp_send(stack, port, sender, rcpt, message, login=login)
    except (smtplib.SMTPDataError, smtplib.SMTPRecipientsRefused) as exc:
        if str(getattr(exc, "smtp_code", "4"))[:1] == "4":
            return False
        raise
    return True


def _received(stack, address, password, subject):
    (message,) = wait_for(lambda: [m for m in fetch_inbox(stack, address, password)
                                   if m["Subject"] == subject], timeout=60)
    return message


def test_an_alias_on_node_a_forwards_to_node_b_with_an_srs_return_path(two_nodes):
    a_stack, b_stack = two_nodes.a_stack, two_nodes.b.stack
    forwarding_ensure(actor=SYSTEM)  # the SRS secret and ARC key, recorded for every node
    org = OrganisationFactory()
    on_a = services.domain_create(actor=SYSTEM, organisation=org, name=unique_domain("fa"),
                                  node="local")
    on_b = services.domain_create(actor=SYSTEM, organisation=org, name=unique_domain("fb"),
                                  node=NODE_B)
    alice_pw, bob_pw = generate_password(), generate_password()
    alice, _ = services.mailbox_create(actor=SYSTEM, domain=on_a, local_part="alice",
                                       password=alice_pw)
    bob, _ = services.mailbox_create(actor=SYSTEM, domain=on_b, local_part="bob",
                                     password=bob_pw)
    alias = services.alias_create(actor=SYSTEM, domain=on_a, local_part="fwd",
                                  destinations=[bob.address])
    wait_for(lambda: applied(alias) and applied(alice) and applied(bob), timeout=60)
    b_port = b_stack.cfg.ports["smtp"]
    wait_for(lambda: f"{on_b.name} FILTER smtp:[127.0.0.1]:{b_port}\n"
             in a_stack.cfg.path(PEER_FILTER).read_text(), timeout=30)
    wait_for(lambda: a_stack.pid("postsrsd") is not None, timeout=30)

    # An outside sender writes to the alias on A's MX; A forwards the copy to bob on B.
    sender = f"carol@{unique_domain('orig').removesuffix('.test')}.example"
    message = make_message(sender, alias.address, "forwarded across nodes")
    wait_for(lambda: _try_send(a_stack, "smtp", sender, alias.address, message), timeout=30)
    try:
        received = _received(b_stack, bob.address, bob_pw, "forwarded across nodes")
    except AssertionError:
        raise AssertionError(f"not forwarded:\n{a_stack.log_tails(60)}") from None
    secret = decrypt(SrsSecret.objects.get(signing=True).secret_encrypted).decode()
    srs = srs0_address(secret, sender, day=int(time.time()) // 86400,
                       srs_domain=a_stack.cfg.srs)
    # Postfix folds the address to lower case; SRS hashes are compared without case.
    assert received["Return-Path"].strip("<>").lower() == srs.lower()
    assert received["Return-Path"].lower().endswith(f"@{a_stack.cfg.srs}>")
    assert received["From"] == sender  # the header is the author's, untouched
    assert received.get_all("ARC-Seal")  # sealed on A's forwarding listener

    # A's own user writes to bob: the same route, and the return path stays hers.
    own = make_message(alice.address, bob.address, "from a user of node A")
    wait_for(lambda: _try_send(a_stack, "submission", alice.address, bob.address, own,
                               login=(alice.address, alice_pw)), timeout=30)
    received = _received(b_stack, bob.address, bob_pw, "from a user of node A")
    assert received["Return-Path"] == f"<{alice.address}>"
