"""Backups of an organisation that keeps its mail encrypted at rest (Dovecot's mail_crypt):
what is backed up is the message a client reads (dsync reads through the plugin), so a second
run finds nothing new, and a restore puts it back encrypted on disk and readable over IMAP."""

import pytest
from django.core.management import call_command

from backups.selectors import scope_resolve
from backups.services import backup_run
from backups.targets import target_from_spec
from mailcrypt.services import organisation_set_encryption
from mailhost.backend import mailsnap
from nodes.models import MailNode
from tenants.access import SYSTEM
from tenants.commands import command_actor
from tests.backups.support import deliver, hosted_mailboxes, mail_state
from tests.factories import OrganisationFactory
from tests.stack import unique_domain, wait_for

pytestmark = [pytest.mark.stack, pytest.mark.django_db(transaction=True)]
OPERATOR = command_actor("backup")
CRYPTED_MAGIC = b"CRYPTED\x03\x07"  # dcrypt's file format


def _files_on_disk(stack, home_id) -> list[bytes]:
    root = stack.cfg.home_dir(str(home_id)) / "Maildir"
    return [f.read_bytes() for sub in ("new", "cur") for f in (root / sub).glob("*")
            if f.is_file()]


def test_an_encrypted_mailbox_backs_up_once_and_restores_encrypted_and_readable(
    reconcile_worker, mail_stack, tmp_path
):
    org = OrganisationFactory()
    organisation_set_encryption(actor=SYSTEM, organisation=org, enabled=True)
    _, (box,) = hosted_mailboxes(reconcile_worker, org, unique_domain("enc"), "wren")
    wait_for(lambda: MailNode.objects.get(pk=reconcile_worker.pk).applied_revision
             >= MailNode.objects.get(pk=reconcile_worker.pk).desired_revision, 15)
    deliver(mail_stack, box.address, "sealed one", "sealed two")
    assert all(raw.startswith(CRYPTED_MAGIC) for raw in _files_on_disk(mail_stack, box.home_id))
    before = mail_state(mail_stack, box.address)

    scope, target = (scope_resolve(OPERATOR, f"mailbox:{box.address}"),
                     target_from_spec(f"dir:{tmp_path}"))
    first = backup_run(actor=OPERATOR, scope=scope, target=target)
    second = backup_run(actor=OPERATOR, scope=scope, target=target)
    assert (first.messages, first.objects_uploaded) == (2, 3)  # two messages and a manifest
    assert (second.messages, second.objects_uploaded) == (2, 1)  # the manifest alone

    mailsnap.wipe_mail(mail_stack.dovecot_conf, box.address)
    assert mail_state(mail_stack, box.address) == []
    call_command("restore", mailbox=box.address, target=f"dir:{tmp_path}")
    assert mail_state(mail_stack, box.address) == before
    restored = _files_on_disk(mail_stack, box.home_id)
    assert len(restored) == 2 and all(raw.startswith(CRYPTED_MAGIC) for raw in restored)
    assert all(b"sealed" not in raw for raw in restored)
