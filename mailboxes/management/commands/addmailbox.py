import getpass

from django.core.management.base import BaseCommand, CommandError

from mailboxes.selectors import domain_get
from mailboxes.services import mailbox_create
from mailhost.names import InvalidName, split_address
from tenants.commands import command_actor, domain_errors_as_command_errors


class Command(BaseCommand):
    help = "Create a mailbox. Without --password-prompt a strong password is generated and printed."

    def add_arguments(self, parser):
        parser.add_argument("address", help="user@domain (the domain must be hosted)")
        parser.add_argument("--display-name", default="")
        parser.add_argument("--quota-mb", type=int, default=None)
        parser.add_argument("--password-prompt", action="store_true",
                            help="ask for the password instead of generating one")

    def handle(self, *args, address, display_name, quota_mb, password_prompt, **options):
        actor = command_actor("addmailbox")
        try:
            local_part, domain_name = split_address(address)
        except InvalidName as exc:
            raise CommandError(str(exc)) from None
        password = getpass.getpass("Password: ") if password_prompt else None
        with domain_errors_as_command_errors():
            mailbox, generated = mailbox_create(
                actor=actor,
                domain=domain_get(actor, domain_name),
                local_part=local_part,
                password=password,
                display_name=display_name,
                quota_mb=quota_mb,
            )
        self.stdout.write(f"Created {mailbox.address}.")
        if generated:
            self.stdout.write(f"Password: {generated}")
