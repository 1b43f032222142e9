"""Backup keys: one per organisation and one for the install, random, stored wrapped by the
install key (DKIM_ENCRYPTION_KEY, through mailhost.crypto), exported and imported as a file."""

import base64
import json

from django.db import IntegrityError, transaction
from django.utils import timezone

from backups.crypto import new_key
from backups.models import BackupKey
from mailhost import crypto
from mailhost.errors import Invalid
from tenants.access import Actor, require_staff
from tenants.audit import audit_record
from tenants.models import Organisation

EXPORT_FORMAT = "mailhost-backup-keys/1"


def _wrap(key: bytes) -> str:
    return crypto.encrypt(base64.b64encode(key))


def unwrap(row: BackupKey) -> bytes:
    """The raw key; SecretUnreadable when the install key is not the one that wrapped it."""
    return base64.b64decode(crypto.decrypt(row.wrapped))


def organisation_key(organisation: Organisation) -> tuple[BackupKey, bytes]:
    """The organisation's backup key, made on first use."""
    row = BackupKey.objects.filter(organisation=organisation).first()
    if row is None:
        row = _create(organisation=organisation)
    return row, unwrap(row)


def install_key() -> tuple[BackupKey, bytes]:
    row = BackupKey.objects.filter(install=True).first()
    if row is None:
        row = _create(install=True)
    return row, unwrap(row)


def _create(**fields) -> BackupKey:
    try:
        with transaction.atomic():
            return BackupKey.objects.create(wrapped=_wrap(new_key()), **fields)
    except IntegrityError:  # made meanwhile by a concurrent run: use that one
        return BackupKey.objects.get(**fields)


def key_prefix(row: BackupKey) -> str:
    """Where the key's objects and manifests live on a target: no organisation name in it."""
    return f"install/{row.id}" if row.install else f"org/{row.id}"


def keys_export(*, organisation: Organisation | None = None, unwrapped: bool = False) -> dict:
    """Every backup key (or one organisation's), still wrapped by the install key: safe to
    store beside the backups, useless without DKIM_ENCRYPTION_KEY. `unwrapped` adds the raw
    key, for handing one organisation its backup (its key + its corner of the target)."""
    rows = BackupKey.objects.select_related("organisation").order_by("created_at")
    if organisation is not None:
        rows = rows.filter(organisation=organisation)
    keys = []
    for row in rows:
        entry = {"id": str(row.id), "install": row.install, "wrapped": row.wrapped,
                 "organisation": row.organisation.slug if row.organisation else None,
                 "prefix": key_prefix(row)}
        if unwrapped:
            entry["key"] = base64.b64encode(unwrap(row)).decode()
        keys.append(entry)
    return {"format": EXPORT_FORMAT, "exported_at": timezone.now().isoformat(), "keys": keys}


def keys_export_json(**options) -> bytes:
    return json.dumps(keys_export(**options), indent=2, sort_keys=True).encode()


@transaction.atomic
def organisation_backup_delete(*, actor: Actor, organisation: Organisation, target) -> int:
    """Forget one organisation's backups: every object and manifest under its key's prefix on
    `target`, then the key itself (copies elsewhere stay unreadable). Others are untouched.
    Returns how many files were deleted."""
    require_staff(actor, "delete backups")
    row = BackupKey.objects.filter(organisation=organisation).first()
    if row is None:
        return 0
    names = list(target.list(key_prefix(row)))
    for name in names:
        target.delete(name)
    audit_record(actor=actor, organisation_id=organisation.pk, action="backup.delete",
                 target_type="backup_key", target=str(row.id), after={"files": len(names)})
    row.delete()
    return len(names)


@transaction.atomic
def keys_import(*, actor: Actor, data: bytes) -> int:
    """Add the keys of an export this install lacks (after a rebuild from a database backup
    older than a key). Every key must unwrap with this install's key; nothing is written
    otherwise. Returns how many were added."""
    require_staff(actor, "import backup keys")
    entries = _parse_export(data)
    added = 0
    for entry in entries:
        if BackupKey.objects.filter(pk=entry["id"]).exists():
            continue
        organisation = None
        if not entry["install"]:
            organisation = Organisation.objects.filter(slug=entry["organisation"]).first()
            if organisation is None or BackupKey.objects.filter(organisation=organisation).exists():
                continue  # no such organisation here, or it has a key of its own now
        elif BackupKey.objects.filter(install=True).exists():
            continue
        BackupKey.objects.create(id=entry["id"], install=entry["install"],
                                 organisation=organisation, wrapped=entry["wrapped"])
        added += 1
    audit_record(actor=actor, organisation_id=None, action="backup.keys_import",
                 target_type="backup_keys", target="import", after={"added": added})
    return added


def _parse_export(data: bytes) -> list[dict]:
    try:
        document = json.loads(data)
        entries = document["keys"]
        if document.get("format") != EXPORT_FORMAT or not isinstance(entries, list):
            raise ValueError
        for entry in entries:
            crypto.decrypt(entry["wrapped"])  # refuse the file before writing anything
            str(entry["id"]), bool(entry["install"])
    except crypto.SecretUnreadable:
        raise Invalid("A key in that file does not unwrap with this install's key "
                      "(DKIM_ENCRYPTION_KEY).", field="file") from None
    except (ValueError, KeyError, TypeError):
        raise Invalid("That is not a Mailhost backup keys export.", field="file") from None
    return entries
