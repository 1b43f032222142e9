"""Encryption at rest, per organisation, against the real Postfix and Dovecot (mail_crypt).

Staff turn it on through the service; a real Celery worker applies the keys to the running
stack; mail arrives over SMTP (Postfix → LMTP → Dovecot). What a thief of the maildir sees is
read from the disk; what the user sees is read over IMAP.
"""

import imaplib
import os
import sqlite3
import time
from pathlib import Path

import pytest

from mailboxes import services
from mailboxes.models import Mailbox
from mailcrypt.services import organisation_set_encryption
from mailhost.backend.config import MAIL_GID, MAIL_UID
from mailhost.backend.files import write_atomic
from mailhost.backend.mailcrypt import MAIL_CRYPT_DB
from mailhost.passwords import generate_password
from nodes.models import MailNode
from nodes.reconcile import reconcile_full
from tenants.access import SYSTEM
from tests.factories import OrganisationFactory
from tests.stack import (
    _imap,
    fetch_inbox,
    make_message,
    smtp_send,
    unique_domain,
    wait_for,
)

pytestmark = [pytest.mark.stack, pytest.mark.django_db(transaction=True)]

# dcrypt's file format starts with this magic ("CRYPTED" and 0x03 0x07).
CRYPTED_MAGIC = b"CRYPTED\x03\x07"


def wait_applied(revision: int) -> None:
    wait_for(lambda: MailNode.objects.get().applied_revision >= revision, timeout=30)


def new_mailbox(organisation, prefix: str) -> tuple[Mailbox, str]:
    domain = services.domain_create(actor=SYSTEM, organisation=organisation,
                                    name=unique_domain(prefix))
    password = generate_password()
    mailbox, _ = services.mailbox_create(actor=SYSTEM, domain=domain, local_part="alice",
                                         password=password)
    wait_applied(mailbox.revision)
    return mailbox, password


def set_encryption(organisation, enabled: bool) -> None:
    organisation_set_encryption(actor=SYSTEM, organisation=organisation, enabled=enabled)
    wait_applied(MailNode.objects.get().desired_revision)


def deliver(stack, mailbox: Mailbox, subject: str) -> None:
    smtp_send(stack, "smtp", "friend@outside.example", mailbox.address,
              make_message("friend@outside.example", mailbox.address, subject,
                           body=f"The body of {subject}.\n"))


def maildir(stack, mailbox: Mailbox, folder: str = "") -> Path:
    return stack.cfg.home_dir(str(mailbox.home_id)) / "Maildir" / (f".{folder}" if folder else "")


def stored(stack, mailbox: Mailbox, folder: str = "") -> bytes:
    """The bytes on disk of the one message that arrived in `folder` since the last look (an
    encrypted file cannot be found by its subject)."""
    root = maildir(stack, mailbox, folder)
    seen = _seen.setdefault(str(root), set())

    def arrived() -> list[Path] | None:
        files = [f for sub in ("new", "cur") for f in (root / sub).glob("*") if f.is_file()]
        return [f for f in files if f.name.split(":")[0] not in seen] or None

    (path,) = wait_for(arrived, timeout=15)
    seen.add(path.name.split(":")[0])
    return path.read_bytes()


_seen: dict[str, set[str]] = {}  # maildir → base names of the files already looked at


def subjects(stack, mailbox: Mailbox, password: str, folder: str = "INBOX") -> list[str]:
    if folder == "INBOX":
        return sorted(str(m["Subject"]) for m in fetch_inbox(stack, mailbox.address, password))
    client = _imap(stack)
    try:
        client.login(mailbox.address, password)
        client.select(folder, readonly=True)
        _, data = client.search(None, "ALL")
        found = []
        for num in data[0].split():
            _, parts = client.fetch(num, "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
            found.append(parts[0][1].decode().split(":", 1)[1].strip())
        return sorted(found)
    finally:
        client.logout()


@pytest.fixture
def orgs(reconcile_worker):
    return OrganisationFactory(), OrganisationFactory()


def test_it_stores_an_encrypting_organisations_mail_encrypted_and_serves_it_plain(
    orgs, mail_stack
):
    org_a, org_b = orgs
    alice, alice_pw = new_mailbox(org_a, "crypt-a")
    bob, bob_pw = new_mailbox(org_b, "crypt-b")
    set_encryption(org_a, True)

    deliver(mail_stack, alice, "secret plans")
    deliver(mail_stack, bob, "open plans")

    on_disk = stored(mail_stack, alice)
    assert on_disk.startswith(CRYPTED_MAGIC)
    assert b"secret plans" not in on_disk and b"The body of" not in on_disk
    assert b"open plans" in stored(mail_stack, bob)  # org B: plain
    assert wait_for(lambda: subjects(mail_stack, alice, alice_pw) or None) == ["secret plans"]
    (message,) = fetch_inbox(mail_stack, alice.address, alice_pw)
    assert message.get_content().strip() == "The body of secret plans."


def test_it_stores_new_mail_plain_after_it_is_turned_off_and_still_reads_the_old(
    orgs, mail_stack
):
    org_a, _ = orgs
    alice, alice_pw = new_mailbox(org_a, "crypt-off")
    set_encryption(org_a, True)
    deliver(mail_stack, alice, "while on")
    assert stored(mail_stack, alice).startswith(CRYPTED_MAGIC)

    set_encryption(org_a, False)
    deliver(mail_stack, alice, "after off")

    assert b"after off" in stored(mail_stack, alice)
    both = ["after off", "while on"]
    assert wait_for(lambda: subjects(mail_stack, alice, alice_pw) == both)


def test_it_files_by_sieve_and_keeps_the_sent_copy_encrypted(orgs, mail_stack):
    org_a, _ = orgs
    alice, alice_pw = new_mailbox(org_a, "crypt-sieve")
    set_encryption(org_a, True)
    deliver(mail_stack, alice, "first")  # the home exists once mail arrived
    stored(mail_stack, alice)
    home = mail_stack.cfg.home_dir(str(alice.home_id))
    write_atomic(home / ".dovecot.sieve",
                 b'require ["fileinto", "mailbox"];\n'
                 b'if header :contains "subject" "invoice" { fileinto :create "Invoices"; }\n',
                 mode=0o600, uid=MAIL_UID, gid=MAIL_GID)

    deliver(mail_stack, alice, "invoice 42")
    filed = stored(mail_stack, alice, folder="Invoices")
    assert filed.startswith(CRYPTED_MAGIC) and b"invoice 42" not in filed
    assert wait_for(lambda: subjects(mail_stack, alice, alice_pw, "Invoices") or None) == [
        "invoice 42"]

    # What a client does after submitting: it appends its copy to Sent over IMAP.
    sent = make_message(alice.address, "friend@outside.example", "my sent copy")
    smtp_send(mail_stack, "submission", alice.address, "friend@outside.example", sent,
              login=(alice.address, alice_pw))
    client = _imap(mail_stack)
    try:
        client.login(alice.address, alice_pw)
        status, _ = client.append("Sent", "(\\Seen)", imaplib.Time2Internaldate(time.time()),
                                  sent.as_bytes())
        assert status == "OK"
    finally:
        client.logout()
    copy = stored(mail_stack, alice, folder="Sent")
    assert copy.startswith(CRYPTED_MAGIC) and b"my sent copy" not in copy
    assert subjects(mail_stack, alice, alice_pw, "Sent") == ["my sent copy"]


def test_it_keeps_the_key_store_root_only(orgs, mail_stack):
    org_a, _ = orgs
    new_mailbox(org_a, "crypt-perm")
    set_encryption(org_a, True)
    store = mail_stack.cfg.state_dir / "mailcrypt"
    assert (store.stat().st_mode & 0o777) == 0o700
    for path in store.iterdir():
        assert path.stat().st_uid == 0 and (path.stat().st_mode & 0o077) == 0, path
    assert os.stat(store).st_uid == 0


def test_it_reports_and_repairs_a_key_store_edited_by_hand_naming_no_key(orgs, mail_stack):
    org_a, org_b = orgs
    alice, _ = new_mailbox(org_a, "crypt-drift-a")
    bob, _ = new_mailbox(org_b, "crypt-drift-b")
    set_encryption(org_a, True)
    node = MailNode.objects.get()
    reconcile_full(node)  # the shared stack may hold rows of earlier tests' organisations
    store = mail_stack.cfg.path(MAIL_CRYPT_DB)
    conn = sqlite3.connect(store)
    with conn:  # quietly stop encrypting A, and give B A's key
        conn.execute("UPDATE mail_crypt_keys SET save_version = 0 WHERE domain = ?",
                     (alice.domain.name,))
        conn.execute("INSERT INTO mail_crypt_keys SELECT ?, private_key, public_key, 2 "
                     "FROM mail_crypt_keys WHERE domain = ?", (bob.domain.name, alice.domain.name))
    conn.close()

    report = reconcile_full(node)

    assert sorted(report.drift) == sorted([f"+ mail_crypt_keys {alice.domain.name}",
                                           f"- mail_crypt_keys {bob.domain.name}"])
    conn = sqlite3.connect(store)
    rows = dict(conn.execute("SELECT domain, save_version FROM mail_crypt_keys"))
    conn.close()
    assert rows.get(alice.domain.name) == 2 and bob.domain.name not in rows
    deliver(mail_stack, alice, "after repair")
    assert stored(mail_stack, alice).startswith(CRYPTED_MAGIC)
