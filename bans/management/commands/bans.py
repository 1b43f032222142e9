from django.core.management.base import BaseCommand, CommandError

from bans.selectors import ban_list, throttled_accounts
from bans.services import ban_lift
from mailhost.errors import DomainError
from tenants.access import Actor

ACTOR = Actor(system="manage.py bans")


class Command(BaseCommand):
    help = "List the login bans on this host's mail node, or lift one: bans list | bans lift IP"

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        sub.add_parser("list", help="active bans and throttled accounts")
        lift = sub.add_parser("lift", help="end the ban on an address now (audited)")
        lift.add_argument("ip")

    def handle(self, *args, action, **options):
        if action == "lift":
            try:
                ban = ban_lift(actor=ACTOR, ip=options["ip"])
            except DomainError as exc:
                raise CommandError(exc.detail) from None
            self.stdout.write(f"Lifted the ban on {ban.ip}.")
            return
        bans = ban_list(ACTOR)
        for ban in bans:
            self.stdout.write(
                f"{ban.ip}\tuntil {ban.until:%Y-%m-%d %H:%M:%S} UTC\t{ban.failures} failures\t"
                f"{','.join(ban.services)}\t{','.join(ban.accounts)}"
            )
        for throttle in throttled_accounts(ACTOR):
            self.stdout.write(
                f"throttled {throttle.account}\t{throttle.failures} failures from "
                f"{throttle.addresses} addresses"
            )
        if not bans:
            self.stdout.write("No active bans.")
