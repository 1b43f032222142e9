import datetime as dt

from django.core.management.base import BaseCommand
from django.utils import timezone

from mailhost.commands import command_actor, domain_errors_as_command_errors
from tenants.selectors import organisation_get
from tenants.services import api_token_create


class Command(BaseCommand):
    help = "Create an API token for an organisation and print it (only the token, once)."

    def add_arguments(self, parser):
        parser.add_argument("--org", required=True, help="organisation slug")
        parser.add_argument("--read-only", action="store_true", help="a token that cannot write")
        parser.add_argument("--name", default="", help="label (default: created <date>)")
        parser.add_argument("--expires-days", type=int, default=None, help="days until expiry")

    def handle(self, *args, org, read_only, name, expires_days, **options):
        actor = command_actor("createapitoken")
        expires_at = None
        if expires_days is not None:
            expires_at = timezone.now() + dt.timedelta(days=expires_days)
        with domain_errors_as_command_errors():
            organisation = organisation_get(actor, org)
            _, raw = api_token_create(
                actor=actor,
                organisation=organisation,
                name=name or f"created {timezone.now():%Y-%m-%d %H:%M}",
                read_only=read_only,
                expires_at=expires_at,
            )
        self.stdout.write(raw)
