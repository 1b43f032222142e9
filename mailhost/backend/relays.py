"""Relays (smarthosts): the three Postfix tables that send a hosted domain's mail through one.

Postfix chooses the relay by the envelope sender's domain (`sender_dependent_relayhost_maps`,
key `@domain`), logs in with that sender's credentials (`smtp_sasl_password_maps` with
`smtp_sender_dependent_authentication = yes`, same key) and holds the connection to the relay's
TLS mode (`smtp_tls_policy_maps`, keyed by the next hop `[host]:port`). The install-wide
default relay is Postfix's `relayhost` (main.cf, mailhost.backend.config); its credentials and
TLS mode are keyed by its next hop here.

The tables are `texthash:` files the reconciler writes; the reconciler reloads Postfix when one
changes. The password table is root:postfix 0640: Postfix's SMTP client reads it, nobody else.
Mail still passes OpenDKIM on the way in, so a relay carries mail we signed.

Pure: snapshots in, file contents out.
"""

import ipaddress
import re
from dataclasses import dataclass

RELAY_HOSTS = "postfix/relay-hosts"
RELAY_PASSWORDS = "postfix/relay-passwords"
RELAY_TLS = "postfix/relay-tls"
RELAY_FILES = (RELAY_HOSTS, RELAY_PASSWORDS, RELAY_TLS)
SECRET_FILES = (RELAY_PASSWORDS,)

# TLS modes, as the portal names them, and Postfix's security level for each.
TLS_LEVELS = {
    "required": "encrypt",  # TLS or no delivery; the certificate is not checked
    "verified": "secure",  # TLS with a certificate valid for the relay's name
    "opportunistic": "may",  # TLS when offered, else plain (credentials then never sent)
}
STRICTNESS = ("opportunistic", "required", "verified")

_LABEL = r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?"
_HOSTNAME = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})+$")
_DOMAIN = re.compile(r"^[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?$")
# A table value is the rest of its line: no whitespace, no control characters; the user name
# ends at the first ':' (Postfix splits there), so it has none.
_USERNAME = re.compile(r"^[\x21-\x39\x3b-\x7e]{1,255}$")
_PASSWORD = re.compile(r"^[\x21-\x7e]{1,255}$")

HEADER = "# Managed by Mailhost (mailhost/backend/relays.py); local edits are overwritten.\n"


class UnsafeRelay(ValueError):
    """A relay value that must never reach a Postfix table."""


@dataclass(frozen=True)
class RelaySnap:
    """One relay as the node uses it. `sender_domain` is the hosted domain whose mail goes
    through it; "" for the install-wide default (Postfix's relayhost)."""

    sender_domain: str
    host: str
    port: int
    tls: str = "required"
    username: str = ""
    password: str = ""

    @property
    def nexthop(self) -> str:
        return nexthop(self.host, self.port)


def check_host(host: str) -> str:
    """A relay host: a DNS name (two labels at least) or an IP address; lower case."""
    try:
        ipaddress.ip_address(host)
        return host
    except ValueError:
        pass
    if not isinstance(host, str) or not _HOSTNAME.match(host) or ".." in host:
        raise UnsafeRelay(f"relay host {host!r} is not a host name or an IP address")
    return host


def nexthop(host: str, port: int) -> str:
    """Postfix's next hop: brackets turn off the MX lookup (the relay is the host itself)."""
    check_host(host)
    if not isinstance(port, int) or not 1 <= port <= 65535:
        raise UnsafeRelay(f"relay port {port!r} is not 1–65535")
    return f"[{host}]:{port}"


def check_credentials(username: str, password: str) -> None:
    if bool(username) != bool(password):
        raise UnsafeRelay("a relay login needs both a user name and a password")
    if username and not _USERNAME.match(username):
        raise UnsafeRelay("a relay user name is 1–255 printable characters without ':' or spaces")
    if password and not _PASSWORD.match(password):
        raise UnsafeRelay("a relay password is 1–255 printable characters without spaces")


def _check(relay: RelaySnap) -> RelaySnap:
    if relay.sender_domain and (not _DOMAIN.match(relay.sender_domain)
                                or ".." in relay.sender_domain):
        raise UnsafeRelay(f"refusing to render sender domain {relay.sender_domain!r}")
    if relay.tls not in TLS_LEVELS:
        raise UnsafeRelay(f"unknown relay TLS mode {relay.tls!r}")
    check_credentials(relay.username, relay.password)
    nexthop(relay.host, relay.port)
    return relay


def render_relay_files(relays: list[RelaySnap]) -> dict[str, bytes]:
    """{path relative to the state dir: content} of the three tables (always all three)."""
    hosts, passwords, tls = [], [], {}
    for relay in sorted(map(_check, relays), key=lambda r: (r.sender_domain, r.nexthop)):
        key = f"@{relay.sender_domain}" if relay.sender_domain else relay.nexthop
        if relay.sender_domain:
            hosts.append(f"{key} {relay.nexthop}\n")
        if relay.username:
            passwords.append(f"{key} {relay.username}:{relay.password}\n")
        # Two domains may share a relay with different modes: the strictest holds for both.
        current = tls.get(relay.nexthop, "opportunistic")
        tls[relay.nexthop] = max(current, relay.tls, key=STRICTNESS.index)
    tls_lines = [f"{hop} {TLS_LEVELS[mode]}\n" for hop, mode in sorted(tls.items())]
    return {
        RELAY_HOSTS: (HEADER + "".join(hosts)).encode(),
        RELAY_PASSWORDS: (HEADER + "".join(passwords)).encode(),
        RELAY_TLS: (HEADER + "".join(tls_lines)).encode(),
    }
