import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from backups.commands import backup_errors_as_command_errors
from backups.services import keys_export_json, keys_import
from tenants.commands import command_actor


class Command(BaseCommand):
    help = ("Export every backup key (still wrapped by the install key, DKIM_ENCRYPTION_KEY) "
            "to a file or stdout, or import such a file into this install.")

    def add_arguments(self, parser):
        parser.add_argument("action", choices=("export", "import"))
        parser.add_argument("file", nargs="?", default="-", help="path, or - for stdin/stdout")

    def handle(self, *args, action, file, **options):
        if action == "export":
            data = keys_export_json()
            if file == "-":
                sys.stdout.buffer.write(data + b"\n")
            else:
                Path(file).write_bytes(data)
                self.stderr.write(f"Wrote the backup keys to {file}.")
            return
        try:
            data = sys.stdin.buffer.read() if file == "-" else Path(file).read_bytes()
        except OSError as exc:
            raise CommandError(f"Cannot read {file}: {exc}") from None
        with backup_errors_as_command_errors():
            added = keys_import(actor=command_actor("backupkeys"), data=data)
        self.stdout.write(f"Imported {added} backup keys.")
