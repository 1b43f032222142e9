from django.core.management.base import BaseCommand

from backups.commands import add_target_argument, backup_errors_as_command_errors
from backups.services import verify_target
from backups.targets import target_from_spec
from tenants.commands import command_actor


class Command(BaseCommand):
    help = "Decrypt and check every manifest and object on the target; names a bad object."

    def add_arguments(self, parser):
        add_target_argument(parser)

    def handle(self, *args, target, **options):
        with backup_errors_as_command_errors():
            run = verify_target(actor=command_actor("backupverify"),
                                target=target_from_spec(target), progress=self.stdout.write)
        self.stdout.write(f"Verified {run.messages} objects on {run.target}.")
