from django.core.management.base import BaseCommand

from backups.commands import add_target_argument, backup_errors_as_command_errors
from backups.services import prune_target
from backups.targets import target_from_spec
from tenants.commands import command_actor


class Command(BaseCommand):
    help = ("Delete snapshots past retention (MAILHOST_BACKUP_KEEP_DAILY/WEEKLY/MONTHLY), then "
            "the objects no kept snapshot refers to.")

    def add_arguments(self, parser):
        add_target_argument(parser)
        for period in ("daily", "weekly", "monthly"):
            parser.add_argument(f"--keep-{period}", type=int, default=None)

    def handle(self, *args, target, keep_daily, keep_weekly, keep_monthly, **options):
        with backup_errors_as_command_errors():
            run = prune_target(actor=command_actor("backupprune"), target=target_from_spec(target),
                               progress=self.stdout.write, daily=keep_daily,
                               weekly=keep_weekly, monthly=keep_monthly)
        self.stdout.write(f"Pruned {run.target}: {run.objects_uploaded} files deleted.")
