from django.core.management.base import BaseCommand

from backups.commands import add_target_argument, backup_errors_as_command_errors
from backups.selectors import scope_resolve
from backups.services import backup_run
from backups.targets import target_from_spec
from tenants.commands import command_actor


class Command(BaseCommand):
    help = ("Back up mail (and, for the whole install, the portal database, secrets and node "
            "state), encrypted, to a directory or S3. Only new messages are uploaded.")

    def add_arguments(self, parser):
        scope = parser.add_mutually_exclusive_group()
        scope.add_argument("--organisation", help="one organisation's mail (slug)")
        scope.add_argument("--domain", help="one domain's mail")
        scope.add_argument("--mailbox", help="one mailbox's mail (address)")
        add_target_argument(parser)

    def handle(self, *args, organisation, domain, mailbox, target, **options):
        actor = command_actor("backup")
        with backup_errors_as_command_errors():
            scope = scope_resolve(actor, scope_spec(organisation, domain, mailbox))
            run = backup_run(actor=actor, scope=scope, target=target_from_spec(target),
                             progress=self.stdout.write)
        self.stdout.write(
            f"Backed up {run.scope} to {run.target}: snapshot {run.snapshot}, "
            f"{run.messages} messages, {run.objects_uploaded} new objects, {run.bytes} bytes."
        )


def scope_spec(organisation: str | None, domain: str | None, mailbox: str | None) -> str:
    if organisation:
        return f"organisation:{organisation}"
    if domain:
        return f"domain:{domain}"
    if mailbox:
        return f"mailbox:{mailbox}"
    return "install"
