"""Restore mail from a backup: pick the newest snapshot that holds each mailbox, decrypt and
check every object it needs (nothing reaches Dovecot if one fails: the error names it), then
hand the missing messages to Dovecot with their folders, flags, keywords and dates. Messages
already there (same folder, same GUID) are left alone, so a second restore adds nothing.

Portal rows: a mailbox restore needs the mailbox (it puts mail back). A domain or
organisation restore also recreates the mailboxes of the snapshot that no longer exist, in
domains the organisation still has, with their password hashes, and applies that to the node
before the mail goes in. Domains are not recreated (ownership proof, DKIM: the portal's own
flow)."""

import shutil
from dataclasses import dataclass
from pathlib import Path

from backups.crypto import label_tag
from backups.models import BackupRun, RunKind
from backups.selectors import Scope
from backups.services.backup import dovecot_conf
from backups.services.keys import key_prefix, organisation_key
from backups.services.runs import Progress, quiet, recorded_run
from backups.services.storage import KeyStore
from backups.targets import Target
from mailboxes.models import Domain, Mailbox
from mailboxes.services import mailbox_recreate
from mailhost.backend import mailsnap
from mailhost.errors import NotFound
from nodes.reconcile import reconcile_incremental
from tenants.access import Actor, require_staff
from tenants.audit import audit_record


@dataclass
class _Plan:
    mailbox: Mailbox
    entry: dict
    workdir: Path
    staged: list[tuple[mailsnap.SnapMessage, Path]]


def restore_run(*, actor: Actor, scope: Scope, target: Target, snapshot: str = "",
                progress: Progress = quiet) -> BackupRun:
    require_staff(actor, "restore backups")
    with recorded_run(actor=actor, kind=RunKind.RESTORE, scope=scope.label,
                      target=target.label) as run:
        for organisation in scope.organisations:
            mailboxes = scope.mailboxes.get(organisation.pk, [])
            restored, snap = _restore_organisation(organisation, mailboxes, scope, target,
                                                   snapshot, progress, actor)
            run.messages += restored
            run.snapshot = snap
            run.save(update_fields=["messages", "snapshot"])
        audit_record(actor=actor, organisation_id=None, action="backup.restore",
                     target_type="backup", target=scope.label,
                     after={"snapshot": run.snapshot, "messages": run.messages})
    return run


def _restore_organisation(organisation, mailboxes, scope, target, snapshot, progress, actor):
    row, key = organisation_key(organisation)
    store = KeyStore(target, key_prefix(row), key)
    try:
        return _restore_from(store, key, organisation, mailboxes, scope, snapshot, progress,
                             actor)
    finally:
        store.close()


def _restore_from(store, key, organisation, mailboxes, scope, snapshot, progress, actor):
    manifest_name = find_manifest(store, key, organisation, scope, snapshot)
    manifest = store.get_json(manifest_name)
    entries = {entry["address"]: entry for entry in manifest["mailboxes"]}
    mailboxes = mailboxes + _recreate_missing(actor, organisation, scope, entries, mailboxes,
                                              progress)
    plans = []
    try:
        for mailbox in mailboxes:
            if mailbox.address in entries:
                plans.append(_prepare(store, mailbox, entries[mailbox.address], progress))
            else:
                progress(f"{mailbox.address}: not in snapshot {manifest['snapshot']}, skipped")
        restored = sum(_apply(plan, progress) for plan in plans)  # all verified by now
    finally:
        for plan in plans:
            shutil.rmtree(plan.workdir, ignore_errors=True)
    return restored, manifest["snapshot"]


def _recreate_missing(actor, organisation, scope, entries, mailboxes, progress) -> list[Mailbox]:
    """The snapshot's mailboxes the portal lost, made again (domain/organisation scope only),
    then applied to their nodes so Dovecot knows them before their mail goes in."""
    if scope.kind not in ("domain", "organisation"):
        return []
    live = {mailbox.address for mailbox in mailboxes}
    domains = {d.name: d for d in Domain.objects.filter(
        organisation=organisation, verified_at__isnull=False).select_related("node")}
    made = []
    for address, entry in sorted(entries.items()):
        domain = domains.get(entry["domain"])
        if address in live or domain is None or (
                scope.kind == "domain" and scope.label != f"domain:{domain.name}"):
            continue
        made.append(mailbox_recreate(
            actor=actor, domain=domain, local_part=entry["local_part"],
            password_hash=entry["password_hash"], display_name=entry["display_name"],
            quota_mb=entry["quota_mb"]))
        progress(f"{address}: mailbox recreated")
    for node in {mailbox.domain.node for mailbox in made}:
        reconcile_incremental(node)
    return made


def find_manifest(store: KeyStore, key: bytes, organisation, scope: Scope, snapshot: str) -> str:
    """The manifest to restore from: the given snapshot, else the newest whose scope covers
    this one (a mailbox is in its own, its domain's and its organisation's snapshots)."""
    labels = [f"organisation:{organisation.slug}"]
    if scope.kind in ("domain", "mailbox"):
        labels.append(scope.label)
    if scope.kind == "mailbox":
        domain = scope.label.rpartition("@")[2]
        labels.append(f"domain:{domain}")
    tags = {label_tag(key, label) for label in labels}
    candidates = [name for name in store.manifests() if name.split("/")[1] in tags]
    if snapshot:
        candidates = [name for name in candidates if name.endswith(f"/{snapshot}")]
    if not candidates:
        which = f"snapshot {snapshot}" if snapshot else "any snapshot"
        raise NotFound(f"No backup of {scope.label} ({which}) on this target.")
    return max(candidates, key=lambda name: name.rsplit("/", 1)[1])


def _prepare(store: KeyStore, mailbox: Mailbox, entry: dict, progress: Progress) -> _Plan:
    """Decrypt and check every object of the mailbox; stage the ones Dovecot lacks."""
    present = mailsnap.existing_messages(dovecot_conf(mailbox), mailbox.address)
    workdir = mailsnap.private_dir("mhrs")
    try:
        return _stage(store, mailbox, entry, workdir, present, progress)
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)  # decrypted mail never stays behind
        raise


def _stage(store, mailbox, entry, workdir, present, progress) -> _Plan:
    plan = _Plan(mailbox=mailbox, entry=entry, workdir=workdir, staged=[])
    checked: set[str] = set()
    jobs: list[tuple[str, Path | None]] = []
    (workdir / "in").mkdir()
    for index, item in enumerate(entry["messages"]):
        if (item["folder"], item["guid"]) in present:
            if item["object"] not in checked:  # there already: only checked
                jobs.append((item["object"], None))
                checked.add(item["object"])
            continue
        path = workdir / "in" / str(index)
        jobs.append((item["object"], path))
        checked.add(item["object"])
        plan.staged.append((_snap_message(item), path))
    store.get_many(jobs)
    progress(f"{mailbox.address}: {len(entry['messages'])} messages checked, "
             f"{len(plan.staged)} to restore")
    return plan


def _snap_message(item: dict) -> mailsnap.SnapMessage:
    return mailsnap.SnapMessage(
        folder=item["folder"], guid=item["guid"], flags=tuple(item["flags"]),
        keywords=tuple(item["keywords"]), date=int(item["date"]), size=int(item["size"]),
    )


def _apply(plan: _Plan, progress: Progress) -> int:
    conf, user = dovecot_conf(plan.mailbox), plan.mailbox.address
    mailsnap.ensure_folders(conf, user, plan.entry["folders"])
    staging = plan.workdir / "m"
    staging.mkdir()
    count = mailsnap.stage_maildir(staging, plan.staged)
    mailsnap.import_maildir(conf, user, staging)
    progress(f"{user}: {count} messages restored")
    return count
