import datetime as dt

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from tenants.commands import command_actor, domain_errors_as_command_errors
from tenants.selectors import organisation_get
from tenants.services import api_token_create, staff_token_create


class Command(BaseCommand):
    help = (
        "Create an API token for an organisation (--org), or an install-wide staff token for "
        "the staff API (--staff), and print it (only the token, once)."
    )

    def add_arguments(self, parser):
        which = parser.add_mutually_exclusive_group(required=True)
        which.add_argument("--org", help="organisation slug")
        which.add_argument(
            "--staff", action="store_true",
            help="a staff token: /api/v1/staff/ only (onboard, list, suspend organisations)",
        )
        parser.add_argument("--read-only", action="store_true", help="a token that cannot write")
        parser.add_argument("--name", default="", help="label (default: created <date>)")
        parser.add_argument("--expires-days", type=int, default=None, help="days until expiry")

    def handle(self, *args, org, staff, read_only, name, expires_days, **options):
        actor = command_actor("createapitoken")
        expires_at = None
        if expires_days is not None:
            expires_at = timezone.now() + dt.timedelta(days=expires_days)
        name = name or f"created {timezone.now():%Y-%m-%d %H:%M}"
        with domain_errors_as_command_errors():
            if staff:
                if read_only:
                    raise CommandError("A staff token is read-write; --read-only is for --org.")
                _, raw = staff_token_create(actor=actor, name=name, expires_at=expires_at)
            else:
                organisation = organisation_get(actor, org)
                _, raw = api_token_create(
                    actor=actor,
                    organisation=organisation,
                    name=name,
                    read_only=read_only,
                    expires_at=expires_at,
                )
        self.stdout.write(raw)
