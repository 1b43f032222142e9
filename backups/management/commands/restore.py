from django.core.management.base import BaseCommand

from backups.commands import add_target_argument, backup_errors_as_command_errors
from backups.management.commands.backup import scope_spec
from backups.selectors import scope_resolve
from backups.services import restore_run
from backups.targets import target_from_spec
from tenants.commands import command_actor


class Command(BaseCommand):
    help = ("Put mail back from a backup: every message, folder and flag the mailbox lacks. "
            "Refuses (naming the object) a backup that does not verify; running it twice "
            "adds nothing.")

    def add_arguments(self, parser):
        scope = parser.add_mutually_exclusive_group(required=True)
        scope.add_argument("--organisation", help="every mailbox of one organisation (slug)")
        scope.add_argument("--domain", help="every mailbox of one domain")
        scope.add_argument("--mailbox", help="one mailbox (address)")
        parser.add_argument("--snapshot", default="", help="a snapshot id (default: newest)")
        add_target_argument(parser)

    def handle(self, *args, organisation, domain, mailbox, snapshot, target, **options):
        actor = command_actor("restore")
        with backup_errors_as_command_errors():
            scope = scope_resolve(actor, scope_spec(organisation, domain, mailbox))
            run = restore_run(actor=actor, scope=scope, target=target_from_spec(target),
                              snapshot=snapshot, progress=self.stdout.write)
        self.stdout.write(f"Restored {run.messages} messages of {run.scope} "
                          f"from snapshot {run.snapshot}.")
