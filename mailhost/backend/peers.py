"""Mail between nodes: the transport table that sends other nodes' domains to those nodes.

Each node hosts some of the install's domains. A message a node's user sends to a domain on
another node leaves over SMTP as it would for any other host, but to a fixed next hop,
`smtp:[host]:port` (the other node's MX listener, `MailNode.smtp_host`/`smtp_port`): no DNS
lookup, so it keeps working while a domain's MX records are wrong or changing (a move). The
receiving node treats it as internet mail (its MX listener, Rspamd and all).

The table is `texthash:` (main.cf's `transport_maps`, after the VERP and report intake maps);
the reconciler re-renders it whole when another node's live domains change and reloads Postfix.
A domain hosted here never appears in it (transport_maps would win over local delivery): the
snapshot reader lists only other nodes' live domains, and a name is live on one node at most.

Pure: snapshots in, file contents out.
"""

import re
from dataclasses import dataclass

from mailhost.backend.relays import nexthop

PEER_TRANSPORT = "postfix/peer-transport"
HEADER = "# Managed by Mailhost (mailhost/backend/peers.py); local edits are overwritten.\n"
_DOMAIN = re.compile(r"^(?=.{1,253}$)[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?$")


class UnsafePeer(ValueError):
    """A value that must never reach the transport table."""


@dataclass(frozen=True)
class PeerRoute:
    """A live domain of another node, and where that node takes its mail."""

    domain: str
    host: str
    port: int


def _line(route: PeerRoute) -> str:
    if not _DOMAIN.match(route.domain) or ".." in route.domain:
        raise UnsafePeer(f"refusing to render peer domain {route.domain!r}")
    try:
        hop = nexthop(route.host, route.port)
    except ValueError as exc:
        raise UnsafePeer(str(exc)) from None
    return f"{route.domain} smtp:{hop}\n"


def render_peer_transport(routes: list[PeerRoute]) -> dict[str, bytes]:
    """{path relative to the state dir: content} of the table (always written, maybe empty)."""
    lines = sorted({_line(route) for route in routes})
    return {PEER_TRANSPORT: (HEADER + "".join(lines)).encode()}
