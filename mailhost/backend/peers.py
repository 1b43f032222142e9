"""Mail between nodes: the transport table that sends other nodes' domains to those nodes.

Each node hosts some of the install's domains. A message a node's user sends to a domain on
another node leaves over SMTP as it would for any other host, but to a fixed next hop,
`smtp:[host]:port` (the other node's MX listener, `MailNode.smtp_host`/`smtp_port`): no DNS
lookup, so it keeps working while a domain's MX records are wrong or changing (a move). The
receiving node treats it as internet mail (its MX listener, Rspamd and all).

Two `texthash:` tables, re-rendered whole when another node's live domains change (Postfix is
then reloaded):

  postfix/peer-transport  main.cf's `transport_maps` (after the VERP and report intake maps):
                          another node's domain goes to the loopback forwarding listener
                          (mailhost/backend/forwarding.py), whatever the sender;
  postfix/peer-filter     that listener's recipient check: `FILTER smtp:[host]:port`, so what
                          it queues leaves for that node directly (a content filter outranks
                          transport_maps: no loop back into the listener).

The detour is what gives *forwarded* mail (an alias here whose target is on another node, for
a message from an outside sender) its SRS return path, as forwarded mail to the internet gets:
transport_maps outrank the sender-dependent forwarding transport, so the choice cannot be made
by sender before the listener. Its cleanup rewrites only senders neither hosted here nor in the
SRS domain; our own users' mail and null senders keep theirs. The forwarding transport hands
the listener one recipient per message (main.cf), so each FILTER is its recipient's alone.
The filter table is matched by exact domain (the listener turns parent-domain matching off for
access maps): a subdomain of another node's domain is not that node's.

A domain hosted here never appears in them (transport_maps would win over local delivery): the
snapshot reader lists only other nodes' live domains, and a name is live on one node at most.

Pure: snapshots in, file contents out.
"""

import re
from dataclasses import dataclass

from mailhost.backend.forwarding import FORWARD_TRANSPORT
from mailhost.backend.relays import nexthop

PEER_TRANSPORT = "postfix/peer-transport"
PEER_FILTER = "postfix/peer-filter"
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


def _checked(route: PeerRoute) -> tuple[str, str]:
    """(domain, the node's next hop) of a route, or UnsafePeer."""
    if not _DOMAIN.match(route.domain) or ".." in route.domain:
        raise UnsafePeer(f"refusing to render peer domain {route.domain!r}")
    try:
        return route.domain, nexthop(route.host, route.port)
    except ValueError as exc:
        raise UnsafePeer(str(exc)) from None


def render_peer_transport(routes: list[PeerRoute], forward_port: int) -> dict[str, bytes]:
    """{path relative to the state dir: content} of both tables (always written, maybe
    empty). `forward_port`: the node's loopback forwarding listener."""
    checked = sorted({_checked(route) for route in routes})
    listener = f"{FORWARD_TRANSPORT}:{nexthop('127.0.0.1', forward_port)}"
    transport = "".join(f"{domain} {listener}\n" for domain, _ in checked)
    filters = "".join(f"{domain} FILTER smtp:{hop}\n" for domain, hop in checked)
    return {PEER_TRANSPORT: (HEADER + transport).encode(),
            PEER_FILTER: (HEADER + filters).encode()}
