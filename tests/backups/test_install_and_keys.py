"""Whole-install items (portal database, secrets, node state), the keys export and import."""

import io
import json
import sqlite3
import subprocess
import tarfile

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from backups.crypto import label_tag
from backups.models import BackupKey, BackupRun
from backups.services import install_key, key_prefix, organisation_key
from backups.services.storage import KeyStore
from backups.targets import DirTarget, TargetError
from backups.tasks import backup_install, run_backup
from mailhost.backend import mailsnap
from nodes.changes import node_default
from tests.factories import OrganisationFactory

pytestmark = pytest.mark.django_db


def _install_items(tmp_path) -> tuple[KeyStore, dict]:
    row, key = install_key()
    store = KeyStore(DirTarget(tmp_path), key_prefix(row), key)
    (name,) = [n for n in store.manifests() if n.split("/")[1] == label_tag(key, "install")]
    return store, {item["kind"]: item for item in store.get_json(name)["items"]}


def test_the_portal_database_backup_restores(tmp_path, settings):
    node = node_default()
    (tmp_path / "node" / "srs").mkdir(parents=True)
    (tmp_path / "node" / "srs" / "secrets").write_text("srs-secret-value\n")
    node.state_dir = str(tmp_path / "node")
    node.save(update_fields=["state_dir"])

    call_command("backup", target=f"dir:{tmp_path / 'bk'}")

    store, items = _install_items(tmp_path / "bk")
    dump = tmp_path / "portal.dump"
    with open(dump, "wb") as out:
        store.get(items["database"]["object"], out)
    if connection.vendor == "postgresql":
        listing = subprocess.run(["pg_restore", "--list", str(dump)], capture_output=True,
                                 text=True, check=True).stdout
        assert "TABLE public mailboxes_mailbox" in listing
        assert "TABLE DATA public backups_backupkey" in listing
    else:
        with sqlite3.connect(dump) as copy:
            assert copy.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    secrets = io.BytesIO()
    store.get(items["secrets"]["object"], secrets)
    assert json.loads(secrets.getvalue()) == {"SECRET_KEY": settings.SECRET_KEY}
    state = io.BytesIO()
    store.get(items["node"]["object"], state)
    state.seek(0)
    with tarfile.open(fileobj=state) as archive:
        assert archive.extractfile("srs/secrets").read() == b"srs-secret-value\n"
    (keys_file,) = (tmp_path / "bk" / "keys").iterdir()
    exported = json.loads(keys_file.read_text())
    assert [k["install"] for k in exported["keys"]] == [True]


def test_keys_export_and_import_bring_back_a_lost_organisation_key(tmp_path, capsys):
    org = OrganisationFactory()
    row, key = organisation_key(org)
    call_command("backupkeys", "export", str(tmp_path / "keys.json"))
    exported = (tmp_path / "keys.json").read_text()
    assert key.hex() not in exported and org.slug in exported  # wrapped, never raw
    BackupKey.objects.filter(pk=row.pk).delete()

    call_command("backupkeys", "import", str(tmp_path / "keys.json"))

    assert "Imported 1 backup keys." in capsys.readouterr().out
    assert organisation_key(org) == (BackupKey.objects.get(pk=row.pk), key)


def test_keys_import_refuses_a_file_wrapped_by_another_install_key(tmp_path, settings):
    org = OrganisationFactory()
    organisation_key(org)
    call_command("backupkeys", "export", str(tmp_path / "keys.json"))
    BackupKey.objects.all().delete()
    settings.DKIM_ENCRYPTION_KEY = "Nl6pyNbD0i8pjh7GswK5r3T1TQyAdtx-uNEzRWXc2Xo="

    with pytest.raises(CommandError, match="does not unwrap with this install's key"):
        call_command("backupkeys", "import", str(tmp_path / "keys.json"))
    (tmp_path / "junk.json").write_text("{not json")
    with pytest.raises(CommandError, match="not a Mailhost backup keys export"):
        call_command("backupkeys", "import", str(tmp_path / "junk.json"))
    assert not BackupKey.objects.exists()


def test_the_scheduled_backup_is_off_without_a_target_and_backs_up_and_prunes_with_one(
    tmp_path, settings
):
    settings.MAILHOST_BACKUP_DIR, settings.MAILHOST_BACKUP_S3_BUCKET = "", ""
    assert backup_install() is None
    assert not BackupRun.objects.exists()

    settings.MAILHOST_BACKUP_DIR = str(tmp_path)
    run_id = backup_install()

    assert BackupRun.objects.get(pk=run_id).status == "ok"
    assert list(BackupRun.objects.order_by("pk").values_list("kind", "status")) == [
        ("backup", "ok"), ("prune", "ok")]
    assert list((tmp_path / "keys").iterdir())


def test_a_backup_staff_queued_runs_in_its_task(tmp_path, settings):
    settings.MAILHOST_BACKUP_DIR, settings.MAILHOST_BACKUP_S3_BUCKET = str(tmp_path), ""
    queued = BackupRun.objects.create(scope="install", target="default")

    run_backup(queued.pk, "default")

    queued.refresh_from_db()
    assert (queued.status, queued.target) == ("ok", f"dir:{tmp_path}")
    assert queued.snapshot and queued.finished_at


def test_a_target_refuses_names_that_leave_it(tmp_path):
    target = DirTarget(tmp_path / "t")
    for name in ("../escape", "/etc/passwd", "a/../../b", "", ".hidden"):
        with pytest.raises(TargetError):
            target.put(name, io.BytesIO(b"x"))
    assert not (tmp_path / "escape").exists()


@pytest.mark.parametrize("folder", ["../../etc", "INBOX/../..", "a//b", "x/cur"])
def test_a_restore_refuses_folder_names_that_leave_the_staging_maildir(tmp_path, folder):
    source = tmp_path / "msg"
    source.write_bytes(b"Subject: x\n\nx\n")
    message = mailsnap.SnapMessage(folder=folder, guid="1.M1P1.host", flags=(), keywords=(),
                                   date=0, size=14)
    with pytest.raises(mailsnap.MailSnapshotError, match="refusing the folder name"):
        mailsnap.stage_maildir(tmp_path / "stage", [(message, source)])
    assert source.exists()
