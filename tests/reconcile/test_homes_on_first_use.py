"""Homes made on first use, against the real stack: no reconcile pass makes a mailbox's home,
its `dav/` or its DAV link; Dovecot makes the home on the first login or delivery, the DAV
server makes home, `dav/` and link on the first request Dovecot accepts. Deletion moves what
exists to archive/ as before; a mailbox never used has nothing to move.
"""

import os
import stat
from pathlib import Path

import pytest

from mailboxes import services
from mailboxes.models import Mailbox
from mailhost.backend.config import MAIL_GID, MAIL_UID
from mailhost.backend.dav import COLLECTION_ROOT, link_target
from mailhost.passwords import generate_password
from nodes.models import MailNode
from nodes.reconcile import reconcile_full
from tenants.access import SYSTEM
from tests.dav.support import dav
from tests.factories import OrganisationFactory
from tests.stack import (
    _imap,
    applied,
    fetch_inbox,
    imap_login,
    make_message,
    smtp_send,
    unique_domain,
    wait_for,
)

pytestmark = [pytest.mark.stack, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def domain(reconcile_worker):
    org = OrganisationFactory()
    return services.domain_create(actor=SYSTEM, organisation=org, name=unique_domain("homes"))


def new_mailboxes(domain, *local_parts) -> dict[str, tuple[Mailbox, str]]:
    made = {}
    for local_part in local_parts:
        password = generate_password()
        mailbox, _ = services.mailbox_create(actor=SYSTEM, domain=domain, local_part=local_part,
                                             password=password)
        made[local_part] = (mailbox, password)
    for mailbox, _ in made.values():
        wait_for(lambda m=mailbox: applied(m), timeout=30)
    return made


def home(stack, mailbox: Mailbox) -> Path:
    return stack.cfg.path(f"mail/{mailbox.home_id}")


def assert_mail_users(*directories: Path) -> None:
    for directory in directories:
        info = directory.stat()
        assert (info.st_uid, info.st_gid) == (MAIL_UID, MAIL_GID), directory
        assert stat.S_IMODE(info.st_mode) == 0o700, directory


def test_no_pass_makes_a_home_and_first_use_does(domain, mail_stack):
    made = new_mailboxes(domain, "imap", "lmtp", "caldav")
    reconcile_full(MailNode.objects.get(pk=domain.node_id))  # the full pass as well
    for mailbox, _ in made.values():
        assert not home(mail_stack, mailbox).exists()
        assert not os.path.lexists(mail_stack.cfg.path(f"{COLLECTION_ROOT}/{mailbox.address}"))

    # First IMAP session: a bare LOGIN touches no storage; the client's first look at its
    # folders makes the home, as the mail user, 0700, and quota reporting works on it.
    mailbox, password = made["imap"]
    assert imap_login(mail_stack, mailbox.address, password)
    client = _imap(mail_stack)
    try:
        client.login(mailbox.address, password)
        assert client.select("INBOX")[0] == "OK"
        assert client.getquotaroot("INBOX")[0] == "OK"
    finally:
        client.logout()
    assert_mail_users(home(mail_stack, mailbox), home(mail_stack, mailbox) / "Maildir")

    # First delivery, before any login.
    mailbox, password = made["lmtp"]
    smtp_send(mail_stack, "smtp", "ext@sender.example", mailbox.address,
              make_message("ext@sender.example", mailbox.address, "first mail"))
    wait_for(lambda: any((home(mail_stack, mailbox) / "Maildir" / "new").glob("*")), timeout=30)
    assert_mail_users(home(mail_stack, mailbox), home(mail_stack, mailbox) / "Maildir")
    [got] = fetch_inbox(mail_stack, mailbox.address, password)
    assert got["Subject"] == "first mail"

    # First CalDAV request: the DAV server makes the home, its dav/ and the link.
    mailbox, password = made["caldav"]
    answer = dav(mail_stack, "PROPFIND", f"/dav/{mailbox.address}/", user=mailbox.address,
                 password=password, headers={"Depth": "1", "Content-Type": "application/xml"})
    assert answer.status == 207
    link = mail_stack.cfg.path(f"{COLLECTION_ROOT}/{mailbox.address}")
    assert os.readlink(link) == link_target(str(mailbox.home_id))
    assert_mail_users(home(mail_stack, mailbox), home(mail_stack, mailbox) / "dav")
    # ... and the user's collections land there, and mail still comes in beside them.
    assert dav(mail_stack, "MKCALENDAR", f"/dav/{mailbox.address}/tasks/", user=mailbox.address,
               password=password).status == 201
    assert (home(mail_stack, mailbox) / "dav" / "tasks").is_dir()
    smtp_send(mail_stack, "smtp", "ext@sender.example", mailbox.address,
              make_message("ext@sender.example", mailbox.address, "beside the calendar"))
    wait_for(lambda: fetch_inbox(mail_stack, mailbox.address, password), timeout=30)

    # A refused login makes nothing.
    stranger, _ = new_mailboxes(domain, "stranger")["stranger"]
    assert dav(mail_stack, "PROPFIND", f"/dav/{stranger.address}/", user=stranger.address,
               password="wrong", headers={"Depth": "0"}).status == 401
    assert not home(mail_stack, stranger).exists()


def test_deleting_moves_what_exists_and_a_never_used_mailbox_has_nothing_to_move(
    domain, mail_stack
):
    made = new_mailboxes(domain, "used", "unused")
    used, used_pw = made["used"]
    unused, unused_pw = made["unused"]
    assert dav(mail_stack, "MKCALENDAR", f"/dav/{used.address}/notes/", user=used.address,
               password=used_pw).status == 201

    for mailbox in (used, unused):
        services.mailbox_delete(actor=SYSTEM, mailbox=Mailbox.objects.get(pk=mailbox.pk))
        wait_for(lambda m=mailbox: applied(m), timeout=30)
    reconcile_full(MailNode.objects.get(pk=domain.node_id))

    archived = mail_stack.cfg.path(f"archive/{used.home_id}")
    assert (archived / "dav" / "notes").is_dir()
    assert not home(mail_stack, used).exists()
    assert not os.path.lexists(mail_stack.cfg.path(f"{COLLECTION_ROOT}/{used.address}"))
    assert not home(mail_stack, unused).exists()
    assert not mail_stack.cfg.path(f"archive/{unused.home_id}").exists()

    # Restored, the used one gets its collections back and the unused one simply works.
    for mailbox in (used, unused):
        services.mailbox_restore(actor=SYSTEM, mailbox=Mailbox.objects.get(pk=mailbox.pk))
        wait_for(lambda m=mailbox: applied(m), timeout=30)
    assert imap_login(mail_stack, unused.address, unused_pw)
    listing = dav(mail_stack, "PROPFIND", f"/dav/{used.address}/", user=used.address,
                  password=used_pw, headers={"Depth": "1"})
    assert listing.status == 207 and b"/notes/" in listing.body
