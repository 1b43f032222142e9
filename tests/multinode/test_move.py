"""Moving a domain from node A to node B without losing mail (issue 19): mail keeps arriving
over SMTP during the whole move, and afterwards every message is in B's IMAP exactly once,
with its folder and flags; A has forgotten the domain and its maildirs. A move interrupted at
any step resumes where it stopped. The doveadm port refuses a wrong password; a tenant cannot
move a domain.

The test process is the portal: it drives the move itself (`move_drive`, what the portal's
worker runs); the copies and the retirement run on the nodes' workers.
"""

import contextlib
import re
import smtplib
import sqlite3
import subprocess
import threading
import time
from email.utils import make_msgid

import pytest

from mailboxes import services
from mailboxes.models import Domain
from mailboxes.services import moves
from mailhost.errors import Forbidden
from mailhost.passwords import generate_password
from nodes.models import DomainMove, MailNode
from tenants.access import SYSTEM, Actor
from tests.factories import MembershipFactory, OrganisationFactory
from tests.multinode.conftest import NODE_B
from tests.multinode.test_two_nodes import applied, stored_domains
from tests.stack import _imap, imap_login, make_message, unique_domain, wait_for

pytestmark = [pytest.mark.stack, pytest.mark.django_db(transaction=True)]

SEEDED = [  # (mailbox, folder, flags)
    ("alice", "INBOX", ("\\Seen", "\\Flagged")),
    ("alice", "INBOX", ()),
    ("alice", "Archive/2024", ("\\Seen", "\\Answered")),
    ("alice", "Archive/2024", ("\\Seen",)),
    ("bob", "INBOX", ("\\Seen",)),
]
SYSTEM_FLAGS = {"\\Seen", "\\Flagged", "\\Answered", "\\Draft", "\\Deleted"}


def imap_client(stack, user, password):
    client = _imap(stack)
    client.login(user, password)
    return client


def seed(stack, user, password, folder, flags) -> str:
    msgid = make_msgid(domain="seed.example")
    message = make_message("old@sender.example", user, f"seeded {msgid}")
    del message["Message-ID"]
    message["Message-ID"] = msgid
    client = imap_client(stack, user, password)
    try:
        client.create(folder)
        status, _ = client.append(folder, "(" + " ".join(flags) + ")", None,
                                  message.as_bytes())
        assert status == "OK"
    finally:
        client.logout()
    return msgid


def mailbox_contents(stack, user, password) -> list[tuple[str, str, frozenset]]:
    """(folder, Message-ID, system flags) of every message in every folder."""
    client = imap_client(stack, user, password)
    found = []
    try:
        _, folders = client.list()
        for line in folders:
            name = line.decode().rsplit(' "/" ', 1)[1].strip('"')
            if b"\\Noselect" in line:
                continue  # a parent with no mail of its own
            status, count = client.select(f'"{name}"', readonly=True)
            assert status == "OK", (name, count)
            if int(count[0]) == 0:
                continue
            _, data = client.fetch("1:*", "(FLAGS BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
            for item in data:
                if not isinstance(item, tuple):
                    continue
                flags = set(re.search(rb"FLAGS \(([^)]*)\)", item[0]).group(1).decode().split())
                msgid = re.search(rb"<[^>]+>", item[1]).group(0).decode()
                found.append((name, msgid, frozenset(flags & SYSTEM_FLAGS)))
    finally:
        client.logout()
    return found


def send_once(stack, to, message) -> bool:
    """Whether the server took the message (its reply to DATA); what happens after (QUIT)
    does not matter: a message taken must not be sent again elsewhere."""
    try:
        client = smtplib.SMTP(*stack.address("smtp"), timeout=30)
    except OSError:
        return False
    try:
        client.ehlo("client.sender.example")
        client.sendmail("ext@sender.example", [to], message.as_bytes())
        return True
    except (smtplib.SMTPException, OSError):
        return False
    finally:
        with contextlib.suppress(smtplib.SMTPException, OSError):
            client.quit()


class Sender(threading.Thread):
    """Sends to the domain's mailboxes over SMTP until stopped: to A's MX listener while A
    takes the domain, to B's once A refuses it (a sender following the changed MX). Only
    messages a server accepted count."""

    def __init__(self, two_nodes, addresses):
        super().__init__(daemon=True)
        self.stacks = [two_nodes.a_stack, two_nodes.b.stack]
        self.addresses = addresses
        self.sent: dict[str, list[str]] = {address: [] for address in addresses}
        self.via_b = 0
        self.stop = threading.Event()

    def run(self):
        n = 0
        while not self.stop.is_set():
            to = self.addresses[n % len(self.addresses)]
            msgid = make_msgid(domain="sender.example")
            message = make_message("ext@sender.example", to, f"during the move {n}")
            del message["Message-ID"]
            message["Message-ID"] = msgid
            for index, stack in enumerate(self.stacks):
                if not send_once(stack, to, message):
                    continue
                self.sent[to].append(msgid)
                self.via_b += index
                n += 1
                break
            time.sleep(0.2)


@pytest.fixture
def moving(two_nodes):
    """A domain on A with two mailboxes holding mail in two folders with flags."""
    for node, stack in ((two_nodes.a, two_nodes.a_stack), (two_nodes.b.node, two_nodes.b.stack)):
        MailNode.objects.filter(pk=node.pk).update(doveadm_port=stack.cfg.ports["doveadm"])
    org = OrganisationFactory()
    domain = services.domain_create(actor=SYSTEM, organisation=org,
                                    name=unique_domain("mv"), node="local")
    boxes = {}
    for local in ("alice", "bob"):
        password = generate_password()
        mailbox, _ = services.mailbox_create(actor=SYSTEM, domain=domain, local_part=local,
                                             password=password)
        boxes[local] = (mailbox, password)
    wait_for(lambda: all(applied(m) for m, _ in boxes.values()), timeout=60)
    seeded = {}
    for local, folder, flags in SEEDED:
        mailbox, password = boxes[local]
        msgid = seed(two_nodes.a_stack, mailbox.address, password, folder, flags)
        seeded[msgid] = (mailbox.address, folder, frozenset(flags))
    return domain, boxes, seeded


def start(domain) -> DomainMove:
    return moves.move_start(actor=SYSTEM, domain=domain, node=NODE_B)


def drive_to_end(move, limit=400) -> DomainMove:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        moves.move_drive(move.pk, budget=60)
        move.refresh_from_db()
        if move.step in (DomainMove.Step.DONE, DomainMove.Step.FAILED):
            return move
    raise AssertionError(f"the move did not finish: {move.step} {move.last_error}")


def diagnose(two_nodes, boxes, expected) -> str:
    """What is missing on B, and what the nodes' logs say of it (a failure's evidence)."""
    lines = []
    for mailbox, password in boxes.values():
        have = {msgid for _, msgid, _ in mailbox_contents(two_nodes.b.stack, mailbox.address,
                                                          password)}
        missing = expected[mailbox.address] - have
        lines.append(f"{mailbox.address}: {len(missing)} of {len(expected[mailbox.address])} "
                     f"missing: {sorted(missing)[:5]}")
        for msgid in sorted(missing)[:3]:
            for stack in (two_nodes.a_stack, two_nodes.b.stack):
                log = stack.cfg.path("log/postfix.log").read_text(errors="replace")
                queue_ids = set(re.findall(r"(\w+): message-id=" + re.escape(msgid), log))
                lines += [f"  {stack.cfg.hostname}: {line}" for line in log.splitlines()
                          if any(q in line for q in queue_ids)][:12]
    return "\n".join(lines)


def check_moved(two_nodes, domain, boxes, seeded, sender):
    a, b = two_nodes.a_stack, two_nodes.b.stack
    expected = {address: set(ids) for address, ids in sender.sent.items()}
    for msgid, (address, _, _) in seeded.items():
        expected[address].add(msgid)

    def arrived():
        contents = {m.address: mailbox_contents(b, m.address, pw) for m, pw in boxes.values()}
        have = {address: {msgid for _, msgid, _ in rows} for address, rows in contents.items()}
        return contents if all(expected[k] <= have[k] for k in expected) else None

    try:
        contents = wait_for(arrived, timeout=180, interval=1)
    except AssertionError:
        raise AssertionError(diagnose(two_nodes, boxes, expected)) from None
    for address, rows in contents.items():
        ids = [msgid for _, msgid, _ in rows]
        assert sorted(ids) == sorted(expected[address]), address  # each exactly once
        for folder, msgid, flags in rows:
            if msgid in seeded:
                assert seeded[msgid][1:] == (folder, flags), msgid
    domain.refresh_from_db()
    assert domain.node.name == NODE_B
    assert domain.name not in stored_domains(a) and domain.name in stored_domains(b)
    with sqlite3.connect(f"file:{a.cfg.lookup_db}?mode=ro", uri=True) as conn:
        assert not conn.execute("SELECT 1 FROM mailboxes WHERE address LIKE ?",
                                (f"%@{domain.name}",)).fetchall()
    for mailbox, password in boxes.values():
        assert not a.cfg.home_dir(str(mailbox.home_id)).exists()
        assert b.cfg.home_dir(str(mailbox.home_id)).exists()
        assert imap_login(b, mailbox.address, password)
        assert not imap_login(a, mailbox.address, password)


def test_a_domain_moves_to_node_b_with_every_message_while_mail_keeps_arriving(
    two_nodes, moving
):
    domain, boxes, seeded = moving
    sender = Sender(two_nodes, [m.address for m, _ in boxes.values()])
    sender.start()
    try:
        wait_for(lambda: sum(map(len, sender.sent.values())) >= 4, timeout=60)
        move = start(domain)
        seen_steps = set()
        deadline = time.monotonic() + 400
        while move.step not in (DomainMove.Step.DONE, DomainMove.Step.FAILED):
            assert time.monotonic() < deadline, move.last_error
            moves.move_drive(move.pk, budget=60)
            move.refresh_from_db()
            seen_steps.add(move.step)
        time.sleep(3)  # a little more mail after the move
    finally:
        sender.stop.set()
        sender.join(30)
    assert move.step == DomainMove.Step.DONE, move.last_error
    assert move.mailboxes_done == move.mailboxes_total == 2
    assert move.copied_at and move.switched_at and move.synced_at and move.finished_at
    assert sum(map(len, sender.sent.values())) > 10
    check_moved(two_nodes, domain, boxes, seeded, sender)


@pytest.mark.parametrize("crash_at", ["copying", "switching", "final_sync", "retiring", "done"])
def test_a_move_interrupted_at_a_step_resumes_there_and_loses_nothing(
    two_nodes, moving, monkeypatch, crash_at
):
    domain, boxes, seeded = moving
    real_advance = moves._advance
    crashed = []

    def advance(move, to, **fields):
        if to == crash_at and not crashed:
            crashed.append(move.step)
            raise RuntimeError(f"worker died before recording {to}")
        real_advance(move, to, **fields)

    monkeypatch.setattr(moves, "_advance", advance)
    sender = Sender(two_nodes, [m.address for m, _ in boxes.values()])
    sender.start()
    try:
        move = start(domain)
        while not crashed:
            moves.move_drive(move.pk, budget=60)
            move.refresh_from_db()
            assert move.step != DomainMove.Step.DONE
        # The step it crashed in is where it stays, with the error, until driven again.
        assert move.step == crashed[0]
        assert "worker died" in move.last_error and move.attempts == 1
        move = drive_to_end(move)
    finally:
        sender.stop.set()
        sender.join(30)
    assert move.step == DomainMove.Step.DONE, move.last_error
    check_moved(two_nodes, domain, boxes, seeded, sender)


def test_the_doveadm_port_refuses_a_wrong_password(two_nodes, moving):
    _, boxes, _ = moving
    alice, _ = boxes["alice"]
    port = two_nodes.a_stack.cfg.ports["doveadm"]
    conf = str(two_nodes.b.stack.cfg.path("dovecot/dovecot.conf"))
    wrong = subprocess.run(
        ["doveadm", "-c", conf, "-o", "doveadm_password=not-the-install-password",
         "fetch", "-u", alice.address, "guid", "all", "-S", f"127.0.0.1:{port}"],
        capture_output=True, text=True, timeout=60, check=False)
    assert wrong.returncode != 0
    assert "auth" in (wrong.stderr + wrong.stdout).lower()
    right = subprocess.run(
        ["doveadm", "-c", conf, "fetch", "-u", alice.address, "guid", "all",
         "-S", f"127.0.0.1:{port}"], capture_output=True, text=True, timeout=60, check=False)
    assert right.returncode == 0, right.stderr
    assert len(right.stdout.split()) >= 4  # alice's seeded messages, read over the port


def test_a_tenant_cannot_move_a_domain(two_nodes, moving):
    domain, _, _ = moving
    owner = MembershipFactory(organisation=domain.organisation, role="owner").user
    with pytest.raises(Forbidden):
        moves.move_start(actor=Actor(user=owner), domain=domain, node=NODE_B)
    assert not DomainMove.objects.filter(domain_id=domain.pk).exists()
    assert Domain.objects.get(pk=domain.pk).node.name == "local"
