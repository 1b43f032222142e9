"""Where mail clients connect: the one answer every surface that tells them gives.

The SRV records (identity.records), Thunderbird autoconfig, Outlook autodiscover and the Apple
profile (mailboxes.autoconfig) and /mailbox/setup/ all take their host and ports from
`client_endpoints()`, so they cannot disagree with each other.

What is advertised is what answers: each port is the one the node listens on (so a development
stack on 2993/2465 advertises 2993/2465, and a production node on 993/465 advertises 993/465),
unless MAILHOST_PUBLIC_<NAME>_PORT says otherwise because a NAT or proxy in front maps a public
port onto the node's (993 → 2993). The HTTPS port (Outlook's autodiscover SRV) is the port of
MAILHOST_PORTAL_URL unless MAILHOST_PUBLIC_HTTPS_PORT is set; CalDAV/CardDAV (`dav`, the SRV
records, the Apple profile, the setup page) go to the edge's HTTPS port (see `dav_port`).
"""

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings

# Mail ports a client is told about, each with the node port it defaults to.
MAIL_PORT_NAMES = ("imaps", "imap", "submissions", "submission")


@dataclass(frozen=True)
class ClientEndpoints:
    host: str  # the mail host: IMAP/SMTP server, SRV target, certificate name
    imaps: int  # IMAP over implicit TLS
    imap: int  # IMAP with STARTTLS
    submissions: int  # SMTP submission over implicit TLS (RFC 8314)
    submission: int  # SMTP submission with STARTTLS
    https: int  # the portal on the mail host: Outlook autodiscover
    dav: int  # the edge on the mail host: CalDAV/CardDAV at /dav/ (mailhost/backend/dav.py)

    @property
    def imap_servers(self) -> tuple[tuple[int, str], ...]:
        """(port, security) for IMAP, implicit TLS first (RFC 8314 prefers it)."""
        return ((self.imaps, "SSL"), (self.imap, "STARTTLS"))

    @property
    def smtp_servers(self) -> tuple[tuple[int, str], ...]:
        return ((self.submissions, "SSL"), (self.submission, "STARTTLS"))

    @property
    def dav_url(self) -> str:
        """Where calendar and contact apps connect (the principal is <this><address>/)."""
        port = "" if self.dav == 443 else f":{self.dav}"
        return f"https://{self.host}{port}/dav/"


def portal_port(portal_url: str) -> int:
    """The port a URL names, or its scheme's default."""
    parts = urlsplit(portal_url)
    return parts.port or (80 if parts.scheme == "http" else 443)


def endpoints_from(
    *, host: str, node_ports: Mapping[str, int], public_ports: Mapping[str, int], portal_url: str
) -> ClientEndpoints:
    """Pure: a public port if one is set (non-zero), else the port the node listens on."""
    mail = {name: public_ports.get(name) or node_ports[name] for name in MAIL_PORT_NAMES}
    https = public_ports.get("https") or portal_port(portal_url)
    return ClientEndpoints(host=host.lower().rstrip("."), https=https,
                           dav=dav_port(node_ports, public_ports, portal_url), **mail)


def dav_port(node_ports: Mapping[str, int], public_ports: Mapping[str, int],
             portal_url: str) -> int:
    """The edge's HTTPS port as clients reach it. An https portal URL is the edge's (that is
    how a production node serves the portal); a plain-http one is gunicorn itself (`make up`),
    and the edge then listens on the node's own HTTPS port."""
    if public_ports.get("https"):
        return public_ports["https"]
    if urlsplit(portal_url).scheme == "https":
        return portal_port(portal_url)
    return node_ports.get("https", 443)


def client_endpoints() -> ClientEndpoints:
    """The endpoints from the current settings (read at call time: tests and nodes change them)."""
    return endpoints_from(
        host=settings.MAILHOST_HOSTNAME,
        node_ports=settings.MAILHOST_PORTS,
        public_ports=settings.MAILHOST_PUBLIC_PORTS,
        portal_url=settings.MAILHOST_PORTAL_URL,
    )
