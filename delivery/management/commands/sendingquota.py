from django.core.management.base import BaseCommand

from delivery.services.quotas import quota_set
from mailboxes.selectors import domain_get
from tenants.commands import command_actor, domain_errors_as_command_errors
from tenants.selectors import organisation_get

LIMITS = ("max_recipients", "hourly", "daily", "max_queued", "login_hourly", "login_daily")


class Command(BaseCommand):
    help = ("Set an organisation's (or one of its domains') sending quota; a limit left out is "
            "none. The mail node enforces it on SMTP submission and the send API alike.")

    def add_arguments(self, parser):
        parser.add_argument("--org", required=True, help="organisation slug")
        parser.add_argument("--domain", default=None, help="one of its domains; else all")
        for name in LIMITS:
            parser.add_argument(f"--{name.replace('_', '-')}", type=int, default=None)

    def handle(self, *args, org, domain, **options):
        actor = command_actor("sendingquota")
        with domain_errors_as_command_errors():
            organisation = organisation_get(actor, org)
            target = domain_get(actor, domain, organisation=organisation) if domain else None
            quota = quota_set(actor=actor, organisation=organisation, domain=target,
                              **{name: options[name] for name in LIMITS})
        limits = ", ".join(f"{k} {v}" for k, v in quota.limits().items() if v is not None)
        self.stdout.write(f"Sending quota of {quota.scope}: {limits or 'no limits'}.")
