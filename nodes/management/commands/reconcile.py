from django.core.management.base import BaseCommand, CommandError

from nodes.changes import node_default
from nodes.models import MailNode
from nodes.reconcile import reconcile_full, reconcile_incremental


class Command(BaseCommand):
    help = (
        "Bring a mail node to the desired state now. Default: a full reconcile (every row and "
        "managed file diffed, drift reported and repaired). --dry-run prints the diff only."
    )

    def add_arguments(self, parser):
        parser.add_argument("--node", help="node name (default: the local node)")
        parser.add_argument("--dry-run", action="store_true", help="print what would change")
        parser.add_argument("--incremental", action="store_true",
                            help="apply only the pending change log, not a full diff")
        parser.add_argument("--full", action="store_true", help="(the default) a full reconcile")

    def handle(self, *args, node, dry_run, incremental, full, **options):
        target = self._node(node)
        if incremental and not dry_run:
            revision = reconcile_incremental(target)
            self.stdout.write(f"{target.name}: applied revision {revision}.")
            return
        report = reconcile_full(target, dry_run=dry_run)
        for line in report.describe():
            self.stdout.write(line)
        verb = "would change" if dry_run else "changed"
        self.stdout.write(
            f"{target.name}: revision {report.revision}; {verb} {report.rows.count} row(s) and "
            f"{len(report.files)} file(s)."
        )
        if report.drift:
            self.stdout.write(self.style.WARNING(f"drift repaired: {len(report.drift)} item(s)"))

    def _node(self, name: str | None) -> MailNode:
        if name is None:
            return node_default()
        node = MailNode.objects.filter(name=name).first()
        if node is None:
            raise CommandError(f"No node named {name!r}.")
        return node
