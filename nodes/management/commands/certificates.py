from django.core.management.base import BaseCommand, CommandError

from nodes.certificates import certificate_statuses, renew_node_certificates
from nodes.changes import node_default
from nodes.models import MailNode


class Command(BaseCommand):
    help = (
        "The node's certificates: `status` lists each with its expiry; `renew` obtains the due "
        "ones now over ACME (as the hourly task does), within the back-off of earlier failures."
    )

    def add_arguments(self, parser):
        parser.add_argument("action", choices=["status", "renew"])
        parser.add_argument("--node", help="node name (default: the local node)")

    def handle(self, *args, action, node, **options):
        try:
            target = MailNode.objects.get(name=node) if node else node_default()
        except MailNode.DoesNotExist:
            raise CommandError(f"No mail node named {node!r}.") from None
        if action == "renew":
            result = renew_node_certificates(target)
            for name in result.issued:
                self.stdout.write(f"issued: {name}")
            for name, error in result.failed.items():
                self.stdout.write(self.style.ERROR(f"failed: {name}: {error}"))
            for name in result.deferred:
                self.stdout.write(f"deferred (back-off or order budget): {name}")
        for status in certificate_statuses(target):
            expiry = (f"{status.not_after:%Y-%m-%d} ({status.days_left} days)"
                      if status.not_after else "none")
            failing = f"; renewal failing ({status.failures}): {status.last_error}" \
                if status.failures else ""
            self.stdout.write(f"{' '.join(status.names)}: {expiry}{failing}")
        if action == "renew" and result.failed:
            raise CommandError("Some certificates could not be obtained.")
