"""Where the other nodes deliver a node's domains: its SMTP address, and the change it makes.

Every node renders a transport to each other node's live domains (mailhost/backend/peers.py);
a node's address is part of that state on every *other* node, so setting it records a peer
change there.
"""

from django.db import transaction

from mailhost.backend.relays import UnsafeRelay, nexthop
from mailhost.errors import Invalid
from nodes.changes import record_peer_changes
from nodes.models import MailNode


def node_set_smtp_address(*, node: MailNode, host: str, port: int = 25) -> MailNode:
    """Set (or, with host "", clear) the address the other nodes send this node's domains to.
    A host name (two labels at least) or an IP address, and a port 1–65535."""
    host = (host or "").strip().lower()
    if host:
        try:
            nexthop(host, port)
        except UnsafeRelay:
            raise Invalid(f"{host!r} port {port!r} is not a host name or IP address and a "
                          "port 1–65535.", field="smtp_host") from None
    with transaction.atomic():
        node = MailNode.objects.select_for_update().get(pk=node.pk)
        if (node.smtp_host, node.smtp_port) == (host, port):
            return node
        node.smtp_host, node.smtp_port = host, port
        node.save(update_fields=["smtp_host", "smtp_port"])
        transaction.on_commit(lambda: record_peer_changes(node_id=node.pk))
    return node
