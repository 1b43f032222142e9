from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from identity.records import zone_fragment
from identity.selectors import domain_records
from identity.services import dns_check_run
from mailboxes.selectors import domain_get
from tenants.commands import command_actor, domain_errors_as_command_errors
from tenants.selectors import organisation_get


class Command(BaseCommand):
    help = (
        "Check a domain's DNS records live against MAILHOST_DNS_RESOLVERS and store the "
        "verdicts (ok / wrong / unknown); or print the records as a zone-file fragment."
    )

    def add_arguments(self, parser):
        parser.add_argument("name", help="the hosted domain")
        parser.add_argument("--zone", action="store_true", help="print the BIND fragment only")
        parser.add_argument(
            "--org", default=None,
            help="organisation slug: its claim on the name (default: the verified one)",
        )
        parser.add_argument(
            "--strict", action="store_true", help="exit with an error unless every check is ok"
        )

    def handle(self, *args, name, zone, strict, org, **options):
        actor = command_actor("checkdns")
        with domain_errors_as_command_errors():
            organisation = organisation_get(actor, org) if org else None
            domain = domain_get(actor, name, organisation=organisation)
            if zone:
                records = domain_records(domain)
                ttl = settings.MAILHOST_DNS_TTL
                self.stdout.write(zone_fragment(records, domain=domain.name, ttl=ttl), ending="")
                return
            results = dns_check_run(actor=actor, domain=domain)
        for result in results:
            line = f"{result.status:<8} {result.type:<5} {result.name}: {result.detail}"
            style = self.style.SUCCESS if result.status == "ok" else self.style.ERROR
            self.stdout.write(style(line))
        problems = [r for r in results if r.status != "ok"]
        self.stdout.write(f"{len(results) - len(problems)} of {len(results)} records ok.")
        domain.refresh_from_db()
        if not domain.is_verified:
            self.stdout.write(self.style.WARNING(
                f"{domain.name} is not verified yet: nothing is routed or signed for it."
            ))
        if strict and problems:
            raise CommandError(f"{len(problems)} record(s) not ok.")
