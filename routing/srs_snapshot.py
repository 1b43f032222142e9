"""Forwarding's part of a node's state (registered as the `forwarding` node state source in
RoutingConfig.ready(), read by nodes.reconcile through nodes.snapshot), and the ARC key's DNS
record for every domain's record set."""

from identity import dkim
from mailhost.backend.forwarding import ArcSnap, ForwardingSnap
from mailhost.crypto import decrypt
from nodes.models import MailNode
from routing.models import ArcKey, SrsSecret


def forwarding_snapshot(node: MailNode) -> ForwardingSnap | None:
    """The node's forwarding state (registered as the `forwarding` node state source): the
    signing secret first, then those still in their grace period; None until the portal has
    a secret (the node then keeps the one it made for itself)."""
    del node  # install-wide: every node forwards with the same secrets and key
    rows = list(SrsSecret.objects.order_by("-signing", "-created_at", "-id")
                .values_list("secret_encrypted", flat=True))
    if not rows:
        return None
    arc = ArcKey.objects.filter(active=True).first()
    return ForwardingSnap(
        srs_secrets=tuple(decrypt(token).decode() for token in rows),
        arc=ArcSnap(arc.domain, arc.selector, decrypt(arc.private_key_encrypted)) if arc else None,
    )


def arc_public_record() -> tuple[str, str] | None:
    """(name, TXT value) of the active ARC key, for every domain's record set."""
    arc = ArcKey.objects.filter(active=True).first()
    if arc is None:
        return None
    return arc.dns_name, dkim.txt_value("rsa", arc.public_key)
