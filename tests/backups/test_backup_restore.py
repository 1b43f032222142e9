"""Back up real mail (delivered over SMTP, filed and flagged over IMAP) to a directory and to
S3 (moto's server), wipe it, restore it, and check over IMAP what the holder sees."""

import base64
import json

import pytest
from django.core.management import CommandError, call_command

from backups.crypto import BackupUnreadable
from backups.models import BackupKey, BackupRun
from backups.selectors import scope_resolve
from backups.services import backup_run, key_prefix, organisation_key, restore_run
from backups.services.storage import KeyStore
from backups.targets import DirTarget, target_from_spec
from mailboxes import services as mailboxes_services
from mailhost.backend import mailsnap
from tenants.access import SYSTEM
from tenants.commands import command_actor
from tests.backups.support import (
    PASSWORD,
    deliver,
    file_and_flag,
    folders,
    hosted_mailboxes,
    imap_session,
    mail_state,
)
from tests.factories import OrganisationFactory
from tests.stack import fetch_inbox, imap_login, unique_domain, wait_for

pytestmark = [pytest.mark.stack, pytest.mark.django_db(transaction=True)]
OPERATOR = command_actor("backup")


def _wipe(stack, address):
    mailsnap.wipe_mail(stack.dovecot_conf, address)
    assert mail_state(stack, address) == []


def test_it_restores_a_wiped_mailbox_with_folders_flags_and_keywords(
    reconcile_worker, mail_stack, s3_bucket, tmp_path
):
    _, (box,) = hosted_mailboxes(reconcile_worker, OrganisationFactory(), unique_domain("bk"),
                                 "fern")
    deliver(mail_stack, box.address, "one", "two", "three")
    file_and_flag(mail_stack, box.address, "one", "two", "three")
    before = mail_state(mail_stack, box.address)
    assert ("Archive/2024", "three", frozenset()) in before
    assert ("INBOX", "one", frozenset({"\\Seen", "\\Flagged", "$Project"})) in before

    call_command("backup", mailbox=box.address, target="s3")
    call_command("backup", mailbox=box.address, target=f"dir:{tmp_path}")

    for target in ("s3", f"dir:{tmp_path}"):
        _wipe(mail_stack, box.address)
        call_command("restore", mailbox=box.address, target=target)
        assert mail_state(mail_stack, box.address) == before
        assert {"Archive/2024", "Empty"} <= folders(mail_stack, box.address)
    # A second restore finds everything there and adds nothing.
    call_command("restore", mailbox=box.address, target="s3")
    assert mail_state(mail_stack, box.address) == before
    # Delivery still works after the restore.
    deliver(mail_stack, box.address, "after")
    assert {s for _, s, _ in mail_state(mail_stack, box.address)} == {"one", "two", "three",
                                                                       "after"}


def test_it_uploads_only_the_new_message_the_second_time(reconcile_worker, mail_stack,
                                                         s3_bucket):
    client, bucket = s3_bucket
    org = OrganisationFactory()
    _, (box,) = hosted_mailboxes(reconcile_worker, org, unique_domain("inc"), "ivy")
    deliver(mail_stack, box.address, "first", "second")
    scope, target = scope_resolve(OPERATOR, f"mailbox:{box.address}"), target_from_spec("s3")

    first = backup_run(actor=OPERATOR, scope=scope, target=target)
    deliver(mail_stack, box.address, "third")
    second = backup_run(actor=OPERATOR, scope=scope, target=target)

    row, _ = organisation_key(org)
    objects = client.list_objects_v2(Bucket=bucket, Prefix=f"{key_prefix(row)}/objects/")
    assert (first.messages, second.messages) == (2, 3)
    assert (first.objects_uploaded, second.objects_uploaded) == (3, 2)  # messages + manifest
    assert objects["KeyCount"] == 3
    assert second.status == "ok" and second.bytes > 0
    assert list(BackupRun.objects.filter(kind="backup").values_list("status", flat=True)) == [
        "ok", "ok"]


def test_a_tampered_object_is_refused_by_name_and_nothing_is_restored(
    reconcile_worker, mail_stack, s3_bucket
):
    client, bucket = s3_bucket
    org = OrganisationFactory()
    _, (box,) = hosted_mailboxes(reconcile_worker, org, unique_domain("tam"), "tom")
    deliver(mail_stack, box.address, "a", "b")
    call_command("backup", mailbox=box.address, target="s3")
    row, _ = organisation_key(org)
    victim = client.list_objects_v2(Bucket=bucket,
                                    Prefix=f"{key_prefix(row)}/objects/")["Contents"][0]["Key"]
    body = bytearray(client.get_object(Bucket=bucket, Key=victim)["Body"].read())
    body[40] ^= 0x01  # one bit, as a failing disk or a meddler would
    client.put_object(Bucket=bucket, Key=victim, Body=bytes(body))

    with pytest.raises(CommandError, match=victim):
        call_command("backupverify", target="s3")
    _wipe(mail_stack, box.address)
    with pytest.raises(CommandError, match=victim):
        call_command("restore", mailbox=box.address, target="s3")
    assert mail_state(mail_stack, box.address) == []  # nothing half-restored
    assert BackupRun.objects.filter(kind="restore", status="failed", error__contains=victim)


def test_it_restores_a_whole_domain(reconcile_worker, mail_stack, tmp_path):
    org = OrganisationFactory()
    domain, boxes = hosted_mailboxes(reconcile_worker, org, unique_domain("dom"), "ann", "bob")
    for box in boxes:
        deliver(mail_stack, box.address, *(f"to {box.local_part} {n}" for n in (1, 2, 3)))
    file_and_flag(mail_stack, boxes[0].address, "to ann 1", "to ann 2", "to ann 3")
    before = {box.address: mail_state(mail_stack, box.address) for box in boxes}
    call_command("backup", domain=domain.name, target=f"dir:{tmp_path}")
    _wipe(mail_stack, boxes[0].address)
    # bob's mailbox is deleted from the portal altogether: the node forgets it.
    mailboxes_services.mailbox_delete(actor=SYSTEM, mailbox=boxes[1])
    wait_for(lambda: not imap_login(mail_stack, boxes[1].address, PASSWORD), 15)

    call_command("restore", domain=domain.name, target=f"dir:{tmp_path}")

    # bob is back, with his own password, and so is all the mail of both.
    assert imap_login(mail_stack, boxes[1].address, PASSWORD)
    assert {box.address: mail_state(mail_stack, box.address) for box in boxes} == before
    call_command("restore", domain=domain.name, target=f"dir:{tmp_path}")  # again: no change
    assert {box.address: mail_state(mail_stack, box.address) for box in boxes} == before
    deliver(mail_stack, boxes[1].address, "still delivered")
    messages = fetch_inbox(mail_stack, boxes[1].address, PASSWORD)
    assert "still delivered" in [m["Subject"] for m in messages]


def test_one_organisations_key_cannot_read_anothers_backup(reconcile_worker, mail_stack,
                                                           tmp_path):
    org_a, org_b = OrganisationFactory(), OrganisationFactory()
    _, (box, _empty) = hosted_mailboxes(reconcile_worker, org_a, unique_domain("ka"), "amy",
                                        "empty")  # never received mail: no home yet
    deliver(mail_stack, box.address, "private")
    call_command("backup", organisation=org_a.slug, target=f"dir:{tmp_path}")
    row_a, _ = organisation_key(org_a)
    _, key_b = organisation_key(org_b)
    target = DirTarget(tmp_path)
    as_b = KeyStore(target, key_prefix(row_a), key_b)  # B's key on A's objects
    names = sorted(as_b.known_objects()) + as_b.manifests()
    assert names
    for name in names:
        with pytest.raises(BackupUnreadable, match="another key"):
            as_b.get(name, None)
    raw = b"".join((tmp_path / key_prefix(row_a) / n).read_bytes() for n in names)
    assert b"private" not in raw and org_a.slug.encode() not in raw

    # Hand-over: A's raw key and A's corner of the target are all A needs.
    call_command("backupkeys", "export", str(tmp_path / "a.json"), organisation=org_a.slug,
                 unwrapped=True)
    (entry,) = json.loads((tmp_path / "a.json").read_text())["keys"]
    handed = KeyStore(target, entry["prefix"], base64.b64decode(entry["key"]))
    assert handed.get_json(handed.manifests()[0])["mailboxes"][0]["address"] == box.address
    # Deletion: A's backups and key go; B's stay readable.
    call_command("backup", organisation=org_b.slug, target=f"dir:{tmp_path}")
    call_command("backupkeys", "delete", organisation=org_a.slug, target=f"dir:{tmp_path}")
    assert not list(target.list(key_prefix(row_a)))
    assert not BackupKey.objects.filter(organisation=org_a).exists()
    call_command("backupverify", target=f"dir:{tmp_path}")


def test_prune_drops_what_is_past_retention_and_keeps_referenced_objects(
    reconcile_worker, mail_stack, tmp_path, monkeypatch
):
    org = OrganisationFactory()
    _, (box,) = hosted_mailboxes(reconcile_worker, org, unique_domain("ret"), "rex")
    deliver(mail_stack, box.address, "kept", "dropped")
    scope, target = scope_resolve(OPERATOR, f"mailbox:{box.address}"), DirTarget(tmp_path)
    ids = iter(["20260101T010000000000Z", "20260102T010000000000Z", "20260103T010000000000Z"])
    monkeypatch.setattr("backups.services.backup.new_snapshot_id", lambda: next(ids))
    backup_run(actor=OPERATOR, scope=scope, target=target)  # kept + dropped
    with imap_session(mail_stack, box.address) as client:
        client.select("INBOX")
        _, found = client.search(None, "SUBJECT", "dropped")
        client.store(found[0], "+FLAGS", "(\\Deleted)")
        client.expunge()
    backup_run(actor=OPERATOR, scope=scope, target=target)  # kept only
    backup_run(actor=OPERATOR, scope=scope, target=target)  # kept only
    row, _ = organisation_key(org)
    objects = tmp_path / key_prefix(row) / "objects"
    assert len(list(objects.iterdir())) == 2

    call_command("backupprune", target=f"dir:{tmp_path}", keep_daily=2, keep_weekly=0,
                 keep_monthly=0)

    manifests = sorted(p.name for p in (tmp_path / key_prefix(row)).glob("manifests/*/*"))
    assert manifests == ["20260102T010000000000Z", "20260103T010000000000Z"]
    assert len(list(objects.iterdir())) == 1  # "dropped" is gone, "kept" stays
    call_command("backupverify", target=f"dir:{tmp_path}")
    _wipe(mail_stack, box.address)
    restore_run(actor=OPERATOR, scope=scope, target=target)
    assert [s for _, s, _ in mail_state(mail_stack, box.address)] == ["kept"]


def test_unknown_scopes_and_targets_are_clear_command_errors(db, tmp_path):
    with pytest.raises(CommandError, match="mailbox was not found"):
        call_command("backup", mailbox="nobody@nowhere.test", target=f"dir:{tmp_path}")
    with pytest.raises(CommandError, match="organisation was not found"):
        call_command("restore", organisation="no-such-org", target=f"dir:{tmp_path}")
    with pytest.raises(CommandError, match="Unknown backup target"):
        call_command("backup", target="ftp://example")
    assert not BackupRun.objects.exists()
