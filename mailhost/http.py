"""The client's IP address, behind the operator's TLS proxies or not.

Without MAILHOST_TRUSTED_PROXIES the peer address (REMOTE_ADDR) is the client. With it, and only
when the peer is one of those proxies, the client is the right-most address in X-Forwarded-For
that is not itself a trusted proxy: each proxy appends the address it saw, so everything to
the left of that was written by the client and proves nothing.
"""

import ipaddress
from functools import lru_cache

from django.conf import settings

FORWARDED_HEADERS = ("HTTP_X_FORWARDED_FOR", "HTTP_X_FORWARDED_PROTO", "HTTP_X_FORWARDED_HOST")
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=8)
def trusted_networks(entries: tuple[str, ...]) -> tuple[Network, ...]:
    """MAILHOST_TRUSTED_PROXIES parsed; a bad entry raises ValueError (a system check says so)."""
    return tuple(ipaddress.ip_network(entry, strict=False) for entry in entries)


def _address(raw: str | None):
    try:
        return ipaddress.ip_address((raw or "").strip())
    except ValueError:
        return None


def is_trusted_proxy(raw: str | None) -> bool:
    entries = tuple(settings.MAILHOST_TRUSTED_PROXIES)
    address = _address(raw)
    if not entries or address is None:
        return False
    return any(address in network for network in trusted_networks(entries))


def client_ip(request) -> str | None:
    peer = request.META.get("REMOTE_ADDR") or None
    if not is_trusted_proxy(peer):
        return peer
    hops = [hop.strip() for hop in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
    for hop in reversed([hop for hop in hops if hop]):
        address = _address(hop)
        if address is None:
            break  # garbage a client wrote: nothing further left can be trusted either
        if not is_trusted_proxy(hop):
            return str(address)
    return peer
