from django.core.management.base import BaseCommand, CommandError

from mailboxes.selectors import addresses_outside_hosted_grammar
from mailhost.names import HOSTED_LOCAL_PART_RULE


class Command(BaseCommand):
    help = (
        "List live mailboxes and aliases whose local part the stack cannot serve (created "
        "before the hosted-address grammar). The reconciler refuses to render them: rename or "
        "delete each. Exits 1 when any is found."
    )

    def handle(self, *args, **options):
        found = addresses_outside_hosted_grammar()
        for kind, address, organisation in found:
            self.stdout.write(f"{kind}\t{address}\t(organisation {organisation})")
        if found:
            raise CommandError(
                f"{len(found)} hosted address(es) above cannot be served; rename or delete "
                f"them. Hosted local parts {HOSTED_LOCAL_PART_RULE}."
            )
        self.stdout.write("Every hosted address fits the hosted-address grammar.")
