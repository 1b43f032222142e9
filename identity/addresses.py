"""Which network addresses the portal may open a connection to on a tenant's behalf. Pure.

Publishing by RFC 2136 connects from the portal to a server an organisation admin names. Left
open, that is a port scanner and a pivot into the portal's own network: its loopback services,
the cloud metadata address, private networks. So only public unicast addresses are allowed,
unless staff allowed a network on purpose (MAILHOST_DNS_PUBLISH_ALLOWED_NETWORKS). The table
names each refused range, so the refusal can say what the address is.
"""

import ipaddress

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

_REFUSED = tuple(
    (ipaddress.ip_network(network), what)
    for network, what in (
        ("0.0.0.0/8", "an unspecified address (it means this host)"),
        ("127.0.0.0/8", "a loopback address"),
        ("169.254.0.0/16", "a link-local address (where cloud metadata services live)"),
        ("10.0.0.0/8", "a private address"),
        ("172.16.0.0/12", "a private address"),
        ("192.168.0.0/16", "a private address"),
        ("100.64.0.0/10", "a shared address (carrier-grade NAT)"),
        ("192.0.0.0/24", "a special-purpose address"),
        ("192.0.2.0/24", "a documentation address"),
        ("198.51.100.0/24", "a documentation address"),
        ("203.0.113.0/24", "a documentation address"),
        ("198.18.0.0/15", "a benchmarking address"),
        ("224.0.0.0/4", "a multicast address"),
        ("240.0.0.0/4", "a reserved address"),
        ("::/128", "an unspecified address (it means this host)"),
        ("::1/128", "a loopback address"),
        ("::/96", "an IPv4-compatible address (deprecated)"),
        ("fe80::/10", "a link-local address"),
        ("fc00::/7", "a private (unique local) address"),
        ("fec0::/10", "a private (site-local) address"),
        ("ff00::/8", "a multicast address"),
        ("100::/64", "a discard address"),
        ("64:ff9b:1::/48", "a private (local-use NAT64) address"),
        ("2001::/23", "a special-purpose address"),
        ("2001:db8::/32", "a documentation address"),
    )
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def parse_networks(specs: list[str]) -> list[Network]:
    """`10.1.2.0/24`, `127.0.0.1` (one address), `fd00::/8`; ValueError names a bad entry."""
    networks = []
    for spec in specs:
        try:
            networks.append(ipaddress.ip_network(spec.strip(), strict=False))
        except ValueError:
            raise ValueError(f"{spec!r} is not an IP network like 10.1.2.0/24") from None
    return networks


def normalise(ip: IPAddress) -> IPAddress:
    """An IPv4-mapped IPv6 address (::ffff:127.0.0.1) is the IPv4 address it maps."""
    if ip.version == 6 and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def refusal(ip: IPAddress, allowed: list[Network]) -> str | None:
    """Why the portal may not connect to `ip` ("a loopback address"…); None when it may."""
    ip = normalise(ip)
    if any(ip.version == network.version and ip in network for network in allowed):
        return None
    for embedded in _embedded_ipv4(ip):
        # NAT64 and 6to4 addresses are routed to the IPv4 address inside them.
        reason = refusal(embedded, allowed)
        if reason is not None:
            return f"{reason} inside an IPv6 address"
    for network, what in _REFUSED:
        if ip.version == network.version and ip in network:
            return what
    if not ip.is_global:
        return "not a public address"
    return None


def _embedded_ipv4(ip: IPAddress) -> list[ipaddress.IPv4Address]:
    if ip.version != 6:
        return []
    if ip in _NAT64:
        return [ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)]
    return [ip.sixtofour] if ip.sixtofour is not None else []
