from django.core.management.base import BaseCommand

from mailcrypt.services import organisation_set_encryption
from tenants.commands import command_actor, domain_errors_as_command_errors
from tenants.selectors import organisation_get


class Command(BaseCommand):
    help = ("Turn an organisation's encryption at rest on or off (new mail of its mailboxes "
            "stored encrypted on the node; docs/operations.md).")

    def add_arguments(self, parser):
        parser.add_argument("org", help="the organisation's slug")
        parser.add_argument("state", choices=["on", "off"])

    def handle(self, *args, org, state, **options):
        actor = command_actor("setencryption")
        with domain_errors_as_command_errors():
            organisation = organisation_get(actor, org)
            organisation_set_encryption(actor=actor, organisation=organisation,
                                        enabled=state == "on")
        self.stdout.write(f"Encryption at rest for {organisation.slug}: {state}.")
