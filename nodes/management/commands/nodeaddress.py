"""`manage.py nodeaddress NAME --smtp-host HOST [--smtp-port PORT]`: where the other mail
nodes deliver mail for NAME's domains (docs/operations.md, "Adding a node")."""

from django.core.management.base import BaseCommand, CommandError

from mailhost.errors import Invalid
from nodes.models import MailNode
from nodes.peers import node_set_smtp_address


class Command(BaseCommand):
    help = "Set the SMTP address (MX listener) other mail nodes deliver a node's domains to."

    def add_arguments(self, parser):
        parser.add_argument("name", help="the node's name (MAILHOST_NODE_NAME on that node)")
        parser.add_argument("--smtp-host", required=True,
                            help='host name or IP address; "" to clear (DNS MX decides)')
        parser.add_argument("--smtp-port", type=int, default=25)
        parser.add_argument("--doveadm-port", type=int, default=None,
                            help="its doveadm server's port (MAILHOST_DOVEADM_PORT there): "
                            "where a domain moving away from it is copied from")

    def handle(self, *args, name, smtp_host, smtp_port, doveadm_port=None, **options):
        node = MailNode.objects.filter(name=name).first()
        if node is None:
            raise CommandError(f"There is no mail node named {name!r}.")
        if doveadm_port is not None:
            if not 1 <= doveadm_port <= 65535:
                raise CommandError("--doveadm-port must be 1–65535.")
            MailNode.objects.filter(pk=node.pk).update(doveadm_port=doveadm_port)
        try:
            node = node_set_smtp_address(node=node, host=smtp_host, port=smtp_port)
        except Invalid as exc:
            raise CommandError(str(exc)) from exc
        target = f"{node.smtp_host}:{node.smtp_port}" if node.smtp_host else "DNS (MX records)"
        self.stdout.write(f"Other nodes deliver {node.name}'s domains to {target}.")
