"""Backups' writes: keys, backup, restore, verify, prune (one module each)."""

from backups.services.backup import backup_run, new_snapshot_id
from backups.services.keys import (
    install_key,
    key_prefix,
    keys_export,
    keys_export_json,
    keys_import,
    organisation_backup_delete,
    organisation_key,
)
from backups.services.restore import restore_run
from backups.services.retention import prune_target, snapshots_to_keep, verify_target
from backups.services.runs import quiet

__all__ = [
    "backup_run", "install_key", "key_prefix", "keys_export", "keys_export_json", "keys_import",
    "new_snapshot_id", "organisation_backup_delete", "organisation_key", "prune_target", "quiet",
    "restore_run", "snapshots_to_keep", "verify_target",
]
