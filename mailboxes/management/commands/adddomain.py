from django.core.management.base import BaseCommand

from identity.selectors import verification_record
from mailboxes.services import domain_create
from tenants.commands import command_actor, domain_errors_as_command_errors
from tenants.selectors import organisation_get


class Command(BaseCommand):
    help = "Host a domain for an organisation (a DKIM key is generated for it)."

    def add_arguments(self, parser):
        parser.add_argument("name", help="domain name; Unicode names are stored as IDNA")
        parser.add_argument("--org", required=True, help="organisation slug")
        parser.add_argument("--max-mailboxes", type=int, default=None)
        parser.add_argument("--default-quota-mb", type=int, default=None)
        parser.add_argument("--node", default=None,
                            help="the mail node it lives on (default: the least-loaded node)")

    def handle(self, *args, name, org, max_mailboxes, default_quota_mb, node, **options):
        actor = command_actor("adddomain")
        with domain_errors_as_command_errors():
            domain = domain_create(
                actor=actor,
                organisation=organisation_get(actor, org),
                name=name,
                max_mailboxes=max_mailboxes,
                default_quota_mb=default_quota_mb,
                node=node,
            )
        key = domain.dkim_keys.get()
        self.stdout.write(f"Hosting {domain.display_name} ({domain.name}) on node {domain.node}.")
        self.stdout.write(f"Publish: {key.dns_name}. TXT \"{key.txt_value}\"")
        if not domain.is_verified:
            record = verification_record(domain)
            self.stdout.write(
                f"Not live until its ownership is verified. Publish: {record.name}. TXT "
                f"\"{record.value}\", then run `manage.py checkdns {domain.name} --org {org}` "
                "(or wait for the periodic check)."
            )
