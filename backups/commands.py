"""What the backup management commands share: one error path, progress on stdout."""

from contextlib import contextmanager

from django.core.management.base import CommandError

from backups.crypto import BackupUnreadable
from backups.services.install import InstallBackupError
from backups.targets import TargetError
from mailhost.backend.mailsnap import MailSnapshotError
from mailhost.crypto import SecretUnreadable
from tenants.commands import domain_errors_as_command_errors

BACKUP_ERRORS = (BackupUnreadable, TargetError, MailSnapshotError, InstallBackupError,
                 SecretUnreadable)  # fmt: skip


@contextmanager
def backup_errors_as_command_errors():
    """A bad scope, an unreadable object, an unreachable target: one clear line, exit 1."""
    try:
        with domain_errors_as_command_errors():
            yield
    except BACKUP_ERRORS as exc:
        raise CommandError(str(exc)) from None


def add_target_argument(parser) -> None:
    parser.add_argument("--target", default="",
                        help="dir:/path or s3 (default: the configured S3 bucket, else "
                        "MAILHOST_BACKUP_DIR)")
