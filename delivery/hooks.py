"""Webhook requests on the wire: the signature, and one POST to a pinned public address.

An organisation names the URL, so the portal must not become its way into the portal's own
network (loopback services, cloud metadata, private networks). The host is resolved once, every
address it has is held to the same table DNS publishing uses (identity.addresses: only public
unicast, unless staff allowed a network in MAILHOST_WEBHOOK_ALLOWED_NETWORKS), and the
connection goes to the address that was checked, so a second lookup (DNS rebinding) cannot
swap it. Redirects are not followed. TLS is verified against the host name (SNI and the
certificate), not the address.
"""

import hashlib
import hmac
import http.client
import ipaddress
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from identity.addresses import IPAddress, Network, normalise, refusal

USER_AGENT = "Mailhost-Webhooks/1"
MAX_URL = 2000


class Refused(Exception):
    """The URL is not one the portal may call; the message says why, for the organisation."""


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int
    path: str  # path and query, as sent


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    """`v1=` and HMAC-SHA256 of `<timestamp>.<body>` in hex (the receiver's check, docs/api.md)."""
    mac = hmac.new(secret, str(timestamp).encode("ascii") + b"." + body, hashlib.sha256)
    return "v1=" + mac.hexdigest()


def parse(url: str) -> Target:
    """The parts of a webhook URL; Refused for anything but http(s) with a host and no
    credentials, and for plain http outside the networks staff allowed."""
    url = (url or "").strip()
    if not url or len(url) > MAX_URL:
        raise Refused(f"Give the endpoint's URL (at most {MAX_URL} characters).")
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise Refused("That is not a URL like https://example.com/hooks/mail.") from None
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise Refused("The URL must be https://host/path.")
    if parts.username is not None or parts.password is not None:
        raise Refused("The URL may not carry a user name or password; the signature "
                      "authenticates each request.")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Target(parts.scheme, parts.hostname.rstrip(".").lower(), port, path)


def pinned_address(target: Target, allowed: list[Network],
                   resolve: Callable[[str], list[IPAddress]]) -> str:
    """The one address to connect to, after checking every address the host has. `resolve`
    gives a name's A and AAAA addresses ([] for none), within its own time limit."""
    try:
        addresses = [ipaddress.ip_address(target.host)]
    except ValueError:
        if target.host == "localhost" or target.host.endswith(".localhost"):  # RFC 6761
            addresses = [ipaddress.ip_address("127.0.0.1")]
        else:
            addresses = resolve(target.host)
    if not addresses:
        raise Refused(f"The host {target.host} does not resolve to any address.")
    for address in addresses:
        what = refusal(address, allowed)
        if what is not None:
            shown = what if str(address) == target.host else f"a name for {what}"
            raise Refused(
                f"The host {target.host} is {shown}, where webhooks may not go. Name a public "
                "endpoint, or ask staff to allow its network (MAILHOST_WEBHOOK_ALLOWED_NETWORKS)."
            )
    if target.scheme == "http" and not any(
        normalise(a).version == n.version and normalise(a) in n for a in addresses for n in allowed
    ):
        raise Refused("The URL must use https:// (plain http only reaches networks staff "
                      "allowed).")
    return str(normalise(addresses[0]))


class _Pinned:
    """Connects to the checked address; Host, SNI and certificate use the host name."""

    address: str

    def connect(self):  # noqa: D102 - http.client's hook
        sock = socket.create_connection((self.address, self.port), self.timeout)
        if isinstance(self, http.client.HTTPSConnection):
            sock = self._context.wrap_socket(sock, server_hostname=self.host)
        self.sock = sock


class _PinnedHTTP(_Pinned, http.client.HTTPConnection):
    pass


class _PinnedHTTPS(_Pinned, http.client.HTTPSConnection):
    pass


def post(target: Target, address: str, body: bytes, headers: dict[str, str], *,
         timeout: float, context: ssl.SSLContext | None = None) -> tuple[int, str]:
    """POST `body`; (HTTP status, the start of the answer). OSError/HTTPException on failure."""
    if target.scheme == "https":
        conn = _PinnedHTTPS(target.host, target.port, timeout=timeout,
                            context=context or ssl.create_default_context())
    else:
        conn = _PinnedHTTP(target.host, target.port, timeout=timeout)
    conn.address = address
    try:
        conn.request("POST", target.path, body=body, headers={
            "Content-Type": "application/json", "User-Agent": USER_AGENT, **headers})
        response = conn.getresponse()
        return response.status, response.read(500).decode("utf-8", "replace")
    finally:
        conn.close()
