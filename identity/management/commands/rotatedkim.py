from django.core.management.base import BaseCommand

from identity.services import dkim_rotate_start, dkim_rotation_advance
from mailboxes.selectors import domain_get
from tenants.commands import command_actor, domain_errors_as_command_errors


class Command(BaseCommand):
    help = (
        "Start a DKIM key rotation for a domain, or (--advance) take the rotation steps that are "
        "due: a new key signs once it has been seen in DNS (--force: without waiting)."
    )

    def add_arguments(self, parser):
        parser.add_argument("name", help="the hosted domain")
        parser.add_argument("--advance", action="store_true", help="take the due steps instead")
        parser.add_argument("--force", action="store_true", help="with --advance: do not wait")

    def handle(self, *args, name, advance, force, **options):
        actor = command_actor("rotatedkim")
        with domain_errors_as_command_errors():
            domain = domain_get(actor, name)
            if advance:
                steps = dkim_rotation_advance(actor=actor, domain=domain, force=force)
                self.stdout.write("\n".join(steps) if steps else "Nothing is due yet.")
                return
            for key in dkim_rotate_start(actor=actor, domain=domain):
                self.stdout.write(f"New {key.algorithm} key, pending publication:")
                self.stdout.write(f'{key.dns_name}. TXT "{key.txt_value}"')
