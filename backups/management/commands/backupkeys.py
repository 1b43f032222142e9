import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from backups.commands import add_target_argument, backup_errors_as_command_errors
from backups.services import keys_export_json, keys_import, organisation_backup_delete
from backups.targets import target_from_spec
from tenants.commands import command_actor
from tenants.selectors import organisation_get


class Command(BaseCommand):
    help = ("export: the backup keys (wrapped by the install key, DKIM_ENCRYPTION_KEY) to a "
            "file or stdout; --organisation for one, --unwrapped to hand it over. import: such "
            "a file into this install. delete: one organisation's backups and key.")

    def add_arguments(self, parser):
        parser.add_argument("action", choices=("export", "import", "delete"))
        parser.add_argument("file", nargs="?", default="-", help="path, or - for stdin/stdout")
        parser.add_argument("--organisation", help="only this organisation's key (slug)")
        parser.add_argument("--unwrapped", action="store_true",
                            help="export: include the raw key (for a hand-over)")
        add_target_argument(parser)

    def handle(self, *args, action, file, organisation, unwrapped, target, **options):
        actor = command_actor("backupkeys")
        with backup_errors_as_command_errors():
            org = organisation_get(actor, organisation) if organisation else None
            if action == "export":
                self._export(keys_export_json(organisation=org, unwrapped=unwrapped), file)
            elif action == "import":
                added = keys_import(actor=actor, data=self._read(file))
                self.stdout.write(f"Imported {added} backup keys.")
            else:
                if org is None:
                    raise CommandError("delete needs --organisation.")
                deleted = organisation_backup_delete(actor=actor, organisation=org,
                                                     target=target_from_spec(target))
                self.stdout.write(f"Deleted {deleted} files and the backup key of {org.slug}.")

    def _export(self, data: bytes, file: str) -> None:
        if file == "-":
            sys.stdout.buffer.write(data + b"\n")
            return
        Path(file).write_bytes(data)
        self.stderr.write(f"Wrote the backup keys to {file}.")

    @staticmethod
    def _read(file: str) -> bytes:
        try:
            return sys.stdin.buffer.read() if file == "-" else Path(file).read_bytes()
        except OSError as exc:
            raise CommandError(f"Cannot read {file}: {exc}") from None
