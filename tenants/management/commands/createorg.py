from django.core.management.base import BaseCommand

from tenants.commands import command_actor, domain_errors_as_command_errors
from tenants.services import organisation_create


class Command(BaseCommand):
    help = "Create a client organisation."

    def add_arguments(self, parser):
        parser.add_argument("slug", help="short unique id, e.g. acme")
        parser.add_argument("--name", required=True, help='display name, e.g. "Acme Ltd"')

    def handle(self, *args, slug, name, **options):
        with domain_errors_as_command_errors():
            organisation = organisation_create(
                actor=command_actor("createorg"), slug=slug, name=name
            )
        self.stdout.write(f"Created organisation {organisation.slug} ({organisation.name}).")
