"""What the routing app puts on a node: the per-domain TLS policy map (nodes.snapshot source
"tls_policy_files")."""

from mailhost.backend.tls_policy import POLICY_MAP, TlsPolicySnap, render_policy_map
from nodes.models import MailNode
from routing.models import TlsPolicy


def tls_policy_files(node: MailNode, config) -> dict[str, bytes]:
    """Every node gets every policy: Postfix applies them to whatever it sends."""
    snaps = [TlsPolicySnap(domain=p.domain, level=p.level)
             for p in TlsPolicy.objects.order_by("domain")]
    return {POLICY_MAP: render_policy_map(snaps).encode()}

