"""Two complete mail nodes on one machine, one portal: placement, mail between the nodes over
SMTP, and a node that goes down and comes back (issue 19, "several mail nodes").

Node A is the suite's stack ("local"), node B a second stack with a worker process of its own
(tests/multinode/conftest.py). Everything goes through the services; what is checked is what
the stores, SMTP and IMAP clients and the portal's status page show.
"""

import sqlite3

import pytest
from django.test import Client

from mailboxes import services
from mailboxes.models import Mailbox
from mailhost.backend.peers import PEER_FILTER, PEER_TRANSPORT
from mailhost.passwords import generate_password
from nodes.models import MailNode
from status.models import State, StatusCheck
from status.services import status_check_portal
from tenants.access import SYSTEM
from tests.factories import OrganisationFactory, UserFactory
from tests.multinode.conftest import NODE_B
from tests.stack import (
    applied,
    fetch_inbox,
    imap_login,
    make_message,
    smtp_send,
    unique_domain,
    wait_for,
)

pytestmark = [pytest.mark.stack, pytest.mark.django_db(transaction=True)]


def stored_domains(stack) -> set[str]:
    with sqlite3.connect(f"file:{stack.cfg.lookup_db}?mode=ro", uri=True) as conn:
        return {name for (name,) in conn.execute("SELECT name FROM domains")}


def new_domain(org, node: str, prefix: str):
    return services.domain_create(actor=SYSTEM, organisation=org, name=unique_domain(prefix),
                                  node=node)


def new_mailbox(domain, local_part: str) -> tuple[Mailbox, str]:
    password = generate_password()
    mailbox, _ = services.mailbox_create(actor=SYSTEM, domain=domain, local_part=local_part,
                                         password=password)
    return mailbox, password


@pytest.fixture
def placed(two_nodes):
    """A domain with a mailbox on each node, live on both."""
    org = OrganisationFactory()
    on_a, on_b = new_domain(org, "local", "na"), new_domain(org, NODE_B, "nb")
    alice, alice_pw = new_mailbox(on_a, "alice")
    bob, bob_pw = new_mailbox(on_b, "bob")
    wait_for(lambda: applied(alice) and applied(bob), timeout=60)
    return org, on_a, on_b, (alice, alice_pw), (bob, bob_pw)


def test_each_node_s_lookup_store_holds_only_its_own_domains(two_nodes, placed):
    _, on_a, on_b, (alice, alice_pw), (bob, bob_pw) = placed
    a_store, b_store = stored_domains(two_nodes.a_stack), stored_domains(two_nodes.b.stack)
    assert on_a.name in a_store and on_b.name not in a_store
    assert on_b.name in b_store and on_a.name not in b_store
    # Each mailbox logs in on its own node only.
    assert imap_login(two_nodes.a_stack, alice.address, alice_pw)
    assert imap_login(two_nodes.b.stack, bob.address, bob_pw)
    assert not imap_login(two_nodes.b.stack, alice.address, alice_pw)
    assert not imap_login(two_nodes.a_stack, bob.address, bob_pw)
    # Each node sends the other's domain to the other, by address (no DNS), and never its own.
    b_port, a_port = two_nodes.b.stack.cfg.ports["smtp"], two_nodes.a_stack.cfg.ports["smtp"]
    wait_for(lambda: f"{on_b.name} FILTER smtp:[127.0.0.1]:{b_port}\n"
             in two_nodes.a_stack.cfg.path(PEER_FILTER).read_text(), timeout=30)
    wait_for(lambda: f"{on_a.name} FILTER smtp:[127.0.0.1]:{a_port}\n"
             in two_nodes.b.stack.cfg.path(PEER_FILTER).read_text(), timeout=30)
    assert on_a.name not in two_nodes.a_stack.cfg.path(PEER_TRANSPORT).read_text()


def test_mail_from_node_a_to_node_b_travels_over_smtp_between_them(two_nodes, placed):
    _, on_a, on_b, (alice, alice_pw), (bob, bob_pw) = placed
    b_port = two_nodes.b.stack.cfg.ports["smtp"]
    peer_route = f"{on_b.name} FILTER smtp:[127.0.0.1]:{b_port}\n"
    wait_for(lambda: peer_route in two_nodes.a_stack.cfg.path(PEER_FILTER).read_text(), 30)
    smtp_send(two_nodes.a_stack, "submission", alice.address, bob.address,
              make_message(alice.address, bob.address, "across nodes"),
              login=(alice.address, alice_pw))
    (message,) = wait_for(lambda: fetch_inbox(two_nodes.b.stack, bob.address, bob_pw), 60)
    assert message["Subject"] == "across nodes"
    # B's Postfix received it over SMTP from A's (A greets as its host name), as an MX would.
    received = " ".join(str(h) for h in message.get_all("Received"))
    assert "from mail.stack.test" in received and "by mail-b.stack.test" in received
    # A's log: handed to B's MX listener, not to the fake internet MX or a relay.
    log = two_nodes.a_stack.cfg.path("log/postfix.log")
    wait_for(lambda: f"to=<{bob.address}>, relay=127.0.0.1[127.0.0.1]:{b_port}"
             in log.read_text(errors="replace"), 30)
    # A does not take the peer's mail from the internet: it is not B's MX (no open relay).
    with pytest.raises(Exception, match="Relay access denied"):
        smtp_send(two_nodes.a_stack, "smtp", "ext@sender.example", bob.address,
                  make_message("ext@sender.example", bob.address, "via the wrong MX"))


def test_a_node_down_leaves_the_other_serving_and_its_changes_wait_for_it(two_nodes, placed):
    org, on_a, on_b, (alice, alice_pw), (bob, bob_pw) = placed
    a = two_nodes.a_stack
    two_nodes.b.stop()

    # Node A serves on: mail in from the internet, IMAP.
    smtp_send(a, "smtp", "ext@sender.example", alice.address,
              make_message("ext@sender.example", alice.address, "while B is down"))
    wait_for(lambda: [m for m in fetch_inbox(a, alice.address, alice_pw)
                      if m["Subject"] == "while B is down"], timeout=60)
    # Mail for B's domain waits in A's queue rather than bouncing.
    smtp_send(a, "submission", alice.address, bob.address,
              make_message(alice.address, bob.address, "queued for B"),
              login=(alice.address, alice_pw))

    # The portal shows B down, naming exactly B's domains; A is fine.
    status_check_portal()
    down = StatusCheck.objects.get(key=f"reach:{NODE_B}")
    assert down.state == State.PROBLEM
    assert on_b.name in down.evidence and on_a.name not in down.evidence
    assert down.data["domains"] == [on_b.name]
    up = StatusCheck.objects.get(key="reach:local")
    assert up.state == State.OK
    staff = Client()
    staff.force_login(UserFactory(is_superuser=True, is_staff=True))
    page = staff.get("/mail-admin/status/").content.decode()
    assert "node-b does not answer SMTP" in page and on_b.name in page

    # Changes for B made meanwhile: a mailbox, its password changed, an alias to it.
    carol, first_pw = new_mailbox(on_b, "carol")
    second_pw = generate_password()
    services.mailbox_set_password(actor=SYSTEM, mailbox=carol, password=second_pw)
    info = services.alias_create(actor=SYSTEM, domain=on_b, local_part="info",
                                 destinations=[carol.address])
    b_row = MailNode.objects.get(name=NODE_B)
    assert b_row.applied_revision < b_row.desired_revision

    two_nodes.b.start()
    wait_for(lambda: applied(info), timeout=60)
    # In order: the later password won, the mailbox and its alias are live.
    wait_for(lambda: imap_login(two_nodes.b.stack, carol.address, second_pw), timeout=30)
    assert not imap_login(two_nodes.b.stack, carol.address, first_pw)
    smtp_send(a, "submission", alice.address, info.address,
              make_message(alice.address, info.address, "to the new alias"),
              login=(alice.address, alice_pw))
    wait_for(lambda: fetch_inbox(two_nodes.b.stack, carol.address, second_pw), timeout=60)
    # The mail A queued while B was down arrives too.
    wait_for(lambda: [m for m in fetch_inbox(two_nodes.b.stack, bob.address, bob_pw)
                      if m["Subject"] == "queued for B"], timeout=90)
    status_check_portal()
    assert StatusCheck.objects.get(key=f"reach:{NODE_B}").state == State.OK
