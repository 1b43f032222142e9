"""Verify what a target holds, and prune it: keep the newest snapshot of each of the last N
days, ISO weeks and months (per key and scope), delete the other manifests, then delete the
objects no remaining manifest refers to."""

from datetime import datetime

from django.conf import settings

from backups.models import BackupKey, BackupRun, RunKind
from backups.services.keys import key_prefix, unwrap
from backups.services.runs import Progress, quiet, recorded_run
from backups.services.storage import KeyStore
from backups.targets import Target
from tenants.access import Actor, require_staff


def _stores(target: Target) -> list[KeyStore]:
    rows = BackupKey.objects.order_by("created_at")
    return [KeyStore(target, key_prefix(row), unwrap(row)) for row in rows]


def _objects_of(manifest: dict) -> set[str]:
    if "items" in manifest:
        return {item["object"] for item in manifest["items"]}
    return {m["object"] for box in manifest["mailboxes"] for m in box["messages"]}


def verify_target(*, actor: Actor, target: Target, progress: Progress = quiet) -> BackupRun:
    """Decrypt every manifest and every object they name; BackupUnreadable names a bad one."""
    require_staff(actor, "verify backups")
    with recorded_run(actor=actor, kind=RunKind.VERIFY, scope="install",
                      target=target.label) as run:
        for store in _stores(target):
            checked: set[str] = set()
            for name in store.manifests():
                for obj in sorted(_objects_of(store.get_json(name)) - checked):
                    store.get(obj, None)
                    checked.add(obj)
            run.messages += len(checked)
            progress(f"{store.prefix}: {len(checked)} objects ok")
        run.save(update_fields=["messages"])
    return run


def snapshots_to_keep(snapshots: list[str], *, daily: int, weekly: int, monthly: int) -> set[str]:
    """Grandfather-father-son: the newest snapshot of each of the last `daily` days that have
    one, of the last `weekly` ISO weeks and `monthly` months. The newest is always kept."""
    ordered = sorted(snapshots, reverse=True)
    keep = set(ordered[:1])
    periods = (
        (daily, lambda t: t.date()),
        (weekly, lambda t: t.isocalendar()[:2]),
        (monthly, lambda t: (t.year, t.month)),
    )
    for count, period in periods:
        seen: list = []
        for snapshot in ordered:
            bucket = period(_when(snapshot))
            if bucket in seen:
                continue
            if len(seen) >= count:
                break
            seen.append(bucket)
            keep.add(snapshot)
    return keep


def _when(snapshot: str) -> datetime:
    return datetime.strptime(snapshot, "%Y%m%dT%H%M%S%fZ")


def prune_target(*, actor: Actor, target: Target, progress: Progress = quiet,
                 daily: int | None = None, weekly: int | None = None,
                 monthly: int | None = None) -> BackupRun:
    require_staff(actor, "prune backups")
    policy = {
        "daily": settings.MAILHOST_BACKUP_KEEP_DAILY if daily is None else daily,
        "weekly": settings.MAILHOST_BACKUP_KEEP_WEEKLY if weekly is None else weekly,
        "monthly": settings.MAILHOST_BACKUP_KEEP_MONTHLY if monthly is None else monthly,
    }
    with recorded_run(actor=actor, kind=RunKind.PRUNE, scope="install",
                      target=target.label) as run:
        for store in _stores(target):
            dropped, collected = _prune_store(store, policy)
            run.objects_uploaded += dropped + collected  # here: objects deleted
            progress(f"{store.prefix}: {dropped} manifests and {collected} objects deleted")
        run.save(update_fields=["objects_uploaded"])
    return run


def _prune_store(store: KeyStore, policy: dict) -> tuple[int, int]:
    groups: dict[str, list[str]] = {}
    for name in store.manifests():  # manifests/<scope tag>/<snapshot>
        _, tag, snapshot = name.split("/")
        groups.setdefault(tag, []).append(snapshot)
    referenced: set[str] = set()
    dropped = 0
    for tag, snapshots in groups.items():
        keep = snapshots_to_keep(snapshots, **policy)
        for snapshot in snapshots:
            name = f"manifests/{tag}/{snapshot}"
            if snapshot in keep:
                referenced |= _objects_of(store.get_json(name))
            else:
                store.target.delete(f"{store.prefix}/{name}")
                dropped += 1
    collected = 0
    for obj in sorted(store.known_objects() - referenced):
        store.target.delete(f"{store.prefix}/{obj}")
        collected += 1
    return dropped, collected
