"""Take a backup: each organisation's mail into its own encrypted, content-addressed corner of
the target, plus (whole install) the portal database, secrets and node state under the
install key. Only objects the target lacks are uploaded; every uploaded object is read back
and checked before the run counts as done."""

import io
import shutil
from pathlib import Path

from django.utils import timezone

from backups.crypto import label_tag
from backups.models import BackupRun, RunKind
from backups.selectors import Scope
from backups.services.install import install_items
from backups.services.keys import install_key, key_prefix, keys_export_json, organisation_key
from backups.services.runs import Progress, quiet, recorded_run
from backups.services.storage import KeyStore
from backups.targets import Target
from mailboxes.models import Mailbox
from mailhost.backend import mailsnap
from mailhost.backend.config import NodeConfig
from mailhost.backend.stack import Stack
from tenants.access import Actor, require_staff
from tenants.audit import audit_record

MANIFEST_FORMAT = 1


def new_snapshot_id() -> str:
    return timezone.now().strftime("%Y%m%dT%H%M%S%fZ")


def dovecot_conf(mailbox: Mailbox) -> Path:
    node = mailbox.domain.node
    return Stack(NodeConfig.from_settings(state_dir=Path(node.state_dir))).dovecot_conf


def backup_run(*, actor: Actor, scope: Scope, target: Target, progress: Progress = quiet,
               run: BackupRun | None = None) -> BackupRun:
    require_staff(actor, "take backups")
    snapshot = new_snapshot_id()
    with recorded_run(actor=actor, kind=RunKind.BACKUP, scope=scope.label, target=target.label,
                      run=run) as run:
        run.snapshot = snapshot
        for organisation in scope.organisations:
            mailboxes = scope.mailboxes.get(organisation.pk, [])
            label = f"organisation:{organisation.slug}" if scope.kind == "install" else scope.label
            store = _backup_organisation(organisation, mailboxes, label, snapshot, target,
                                         run, progress)
            _count(run, store)
        if scope.includes_install:
            _count(run, _backup_install(snapshot, target, progress))
            target_put_keys(target, snapshot)
        audit_record(actor=actor, organisation_id=_single_org(scope), action="backup.run",
                     target_type="backup", target=scope.label,
                     after={"snapshot": snapshot, "target": target.label})
    return run


def _single_org(scope: Scope) -> int | None:
    return scope.organisations[0].pk if len(scope.organisations) == 1 and not (
        scope.includes_install) else None


def _count(run: BackupRun, store: KeyStore) -> None:
    run.objects_uploaded += len(store.uploaded)
    run.bytes += store.bytes_written
    run.save(update_fields=["objects_uploaded", "bytes", "messages", "snapshot"])


def _backup_organisation(organisation, mailboxes, label, snapshot, target, run, progress):
    row, key = organisation_key(organisation)
    store = KeyStore(target, key_prefix(row), key)
    try:
        return _backup_organisation_into(store, key, organisation, mailboxes, label, snapshot,
                                          run, progress)
    finally:
        store.close()


def _backup_organisation_into(store, key, organisation, mailboxes, label, snapshot, run,
                              progress):
    entries = []
    for mailbox in mailboxes:
        entry = _backup_mailbox(store, mailbox)
        entries.append(entry)
        run.messages += len(entry["messages"])
        progress(f"{mailbox.address}: {len(entry['messages'])} messages "
                 f"({len(store.uploaded)} new objects so far)")
    manifest = {
        "format": MANIFEST_FORMAT, "snapshot": snapshot, "created": timezone.now().isoformat(),
        "scope": label, "organisation": organisation.slug, "mailboxes": entries,
    }
    store.put_json(f"manifests/{label_tag(key, label)}/{snapshot}", manifest)
    progress(f"{organisation.slug}: verifying {len(store.uploaded)} new objects")
    store.verify_uploaded()
    return store


def _backup_mailbox(store: KeyStore, mailbox: Mailbox) -> dict:
    workdir = mailsnap.private_dir("mhbk")
    try:
        root = mailsnap.snapshot_mailbox(dovecot_conf(mailbox), mailbox.address, workdir)
        messages = []
        for message in mailsnap.walk_maildir(root):
            name, sha = store.put_file(message.path)
            messages.append({
                "folder": message.folder, "guid": message.guid, "flags": list(message.flags),
                "keywords": list(message.keywords), "date": message.date,
                "size": message.size, "sha256": sha, "object": name,
            })
        folders = mailsnap.folders_of(root)
        store.flush()  # the uploads read from the copy, which goes next
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return {
        "address": mailbox.address, "domain": mailbox.domain.name,
        "local_part": mailbox.local_part, "display_name": mailbox.display_name,
        "quota_mb": mailbox.quota_mb, "password_hash": mailbox.password_hash,
        "folders": folders, "messages": messages,
    }


def _backup_install(snapshot: str, target: Target, progress: Progress) -> KeyStore:
    row, key = install_key()
    store = KeyStore(target, key_prefix(row), key)
    try:
        _backup_install_into(store, key, snapshot, progress)
    finally:
        store.close()
    return store


def _backup_install_into(store: KeyStore, key: bytes, snapshot: str, progress: Progress) -> None:
    items = []
    with install_items() as paths:
        for kind, label, path in paths:
            name, sha = store.put_file(path)
            items.append({"kind": kind, "label": label, "object": name, "sha256": sha,
                          "size": path.stat().st_size})
            progress(f"install: {kind} {label} ({path.stat().st_size} bytes)")
        store.flush()
    manifest = {"format": MANIFEST_FORMAT, "snapshot": snapshot, "scope": "install",
                "created": timezone.now().isoformat(), "items": items}
    store.put_json(f"manifests/{label_tag(key, 'install')}/{snapshot}", manifest)
    store.verify_uploaded()


def target_put_keys(target: Target, snapshot: str) -> None:
    """The keys export beside the backups: wrapped by the install key, so useless alone."""
    target.put(f"keys/{snapshot}.json", io.BytesIO(keys_export_json()))
