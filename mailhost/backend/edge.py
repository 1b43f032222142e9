"""The edge: one HTTPS front door (Debian's nginx) for the portal and the hosted domains.

Two files, both pure renderings:

- `edge/nginx.conf` (static, from `NodeConfig`): the HTTP listener, which answers ACME HTTP-01
  challenges from `acme/webroot/` and redirects everything else to HTTPS; the HTTPS listener for
  the mail host and the portal's own names, proxied to the portal (gunicorn); `/webmail` once
  an upstream for it is configured, `/dav` (CalDAV/CardDAV, mailhost/backend/dav.py) and its
  `/.well-known/caldav|carddav` redirects once `dav_upstream` is set (the node config sets it
  to the node's own Radicale); and an include of the hosted sites.
- `edge/sites.conf` (from portal state, written by the reconciler): one HTTPS server per live
  (active, verified) domain for its `mta-sts.`, `autoconfig.` and `autodiscover.` names, with
  that domain's certificate when it has one, else the node's. Only the paths a sender or mail
  client fetches there reach the portal (mailhost/hosts.py routes them); the rest is 404 here.

Headers: what the portal answers carries the portal's own security headers (Django's
SecurityMiddleware, CSP); the edge adds the same ones (`EdgeConfig.headers`) only to what it
answers itself (its error pages), so no response carries a header twice. Nothing here reads a
clock or the disk: the same input always renders the same bytes (golden-file tested).
"""

import re
from collections.abc import Iterable
from dataclasses import dataclass

from mailhost.backend.webmail import WEBMAIL_FPM_SOCKET, WEBMAIL_PUBLIC, render_edge_webmail

EDGE_CONF = "edge/nginx.conf"
EDGE_SITES = "edge/sites.conf"
EDGE_PID = "run/edge/nginx.pid"
EDGE_TEMP = "edge/tmp"  # nginx's request-body and proxy buffers; owned by its worker user
ACME_WEBROOT = "acme/webroot"  # HTTP-01: acme/webroot/.well-known/acme-challenge/<token>
ACME_CHALLENGE_PREFIX = "/.well-known/acme-challenge/"
ACME_LIVE = "acme/live"  # acme/live/<domain>/{cert,key}.pem: a live domain's certificate
NODE_CERT = "tls/cert.pem"
NODE_KEY = "tls/key.pem"
EDGE_USER = "www-data"  # Debian's nginx workers; the master (root) reads keys and binds ports

# The host labels every live domain gets on the edge, and the paths served there: the MTA-STS
# policy (RFC 8461), Thunderbird's autoconfig, Outlook's autodiscover, the domain's BIMI logo
# (mailhost/hosts.py answers exactly these; the edge refuses the rest before the portal).
SERVICE_LABELS = ("mta-sts", "autoconfig", "autodiscover")
SERVICE_PATHS = (
    "/.well-known/mta-sts.txt",
    "/.well-known/autoconfig/mail/config-v1.1.xml",
    "/mail/config-v1.1.xml",
    "/autodiscover/autodiscover.xml",
    "/Autodiscover/Autodiscover.xml",
)

_SAFE_NAME = re.compile(r"^(?=.{1,253}$)[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?$")
_SAFE_UPSTREAM = re.compile(r"^(?:\[[0-9a-f:]+\]|[a-z0-9.-]+):[0-9]{1,5}$")
_SAFE_HEADER = re.compile(r"^[A-Za-z][A-Za-z-]*$")
_SAFE_HEADER_VALUE = re.compile(r"^[\x20-\x7e]*$")
_SAFE_PATH = re.compile(r"^/[A-Za-z0-9._/-]+$")


class UnsafeEdgeValue(ValueError):
    """A value that must never reach the edge's config."""


@dataclass(frozen=True)
class EdgeConfig:
    """What the edge's static file depends on besides the node's ports and names.

    `upstream`: the portal (gunicorn) as host:port. `portal_names`: host names,
    besides the mail host, the portal answers to (the portal URL's host). `headers`: the security
    headers the portal sends on every answer, which the edge sends on its own (name, value).
    `webmail_upstream`/`dav_upstream`: where /webmail and /dav go; "" for not served (404).
    """

    upstream: str = "127.0.0.1:8000"
    portal_names: tuple[str, ...] = ()
    headers: tuple[tuple[str, str], ...] = ()
    webmail_upstream: str = ""
    dav_upstream: str = ""
    user: str = EDGE_USER
    # Roundcube at /webmail/ through the node's php-fpm pool (mailhost/backend/webmail.py).
    webmail: bool = False

    def check(self) -> None:
        for upstream in (self.upstream, self.webmail_upstream, self.dav_upstream):
            if upstream and not _SAFE_UPSTREAM.match(upstream):
                raise UnsafeEdgeValue(f"edge upstream {upstream!r} is not host:port")
        if not self.upstream:
            raise UnsafeEdgeValue("the edge needs the portal's upstream")
        for name in self.portal_names:
            _name(name)
        for header, value in self.headers:
            if not _SAFE_HEADER.match(header) or not _SAFE_HEADER_VALUE.match(value):
                raise UnsafeEdgeValue(f"edge header {header!r}: {value!r} is not plain")
            if '"' in value or "\\" in value:
                raise UnsafeEdgeValue(f"edge header {header!r} may not hold quotes")
        if not re.match(r"^[a-z_][a-z0-9_-]*$", self.user):
            raise UnsafeEdgeValue(f"edge user {self.user!r} is not a user name")


def _name(value: str) -> str:
    if not isinstance(value, str) or not _SAFE_NAME.match(value) or ".." in value:
        raise UnsafeEdgeValue(f"refusing to render host name {value!r} on the edge")
    return value


def _path(state_dir: str, relative: str) -> str:
    path = f"{state_dir}/{relative}"
    if not _SAFE_PATH.match(path) or ".." in path:
        raise UnsafeEdgeValue(f"refusing to render path {path!r} on the edge")
    return path


@dataclass(frozen=True)
class EdgeSite:
    """A live domain on the edge; `cert`/`key` relative to the state dir ("" = the node's)."""

    domain: str
    cert: str = ""
    key: str = ""

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(f"{label}.{_name(self.domain)}" for label in SERVICE_LABELS)


def _https_url_port(https_port: int) -> str:
    return "" if https_port == 443 else f":{https_port}"


def _proxy(upstream: str, indent: str) -> list[str]:
    return [
        f"{indent}proxy_pass http://{upstream};",
        # $http_host: the name *and port* the client asked for, so the portal's absolute URLs
        # (redirects, autodiscover) keep a non-standard port.
        f"{indent}proxy_set_header Host $http_host;",
        f"{indent}proxy_set_header X-Forwarded-Proto $scheme;",
        f"{indent}proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
        f"{indent}proxy_set_header X-Forwarded-Host \"\";",  # never the client's
    ]


def _edge_headers(headers: Iterable[tuple[str, str]], indent: str) -> list[str]:
    return [f'{indent}add_header {name} "{value}" always;' for name, value in headers]


def render_edge_conf(
    *, state_dir: str, hostname: str, bind_address: str, http_port: int, https_port: int,
    edge: EdgeConfig,
) -> str:
    """The edge's static nginx.conf."""
    edge.check()
    s = state_dir
    listen = f"[{bind_address}]" if ":" in bind_address else bind_address
    names = " ".join(dict.fromkeys([_name(hostname), *edge.portal_names]))
    temp = _path(s, EDGE_TEMP)
    lines = [
        "# Managed by Mailhost (mailhost/backend/edge.py); local edits are overwritten.",
        f"user {edge.user};",
        "worker_processes 1;",
        f"pid {_path(s, EDGE_PID)};",
        f"error_log {_path(s, 'log/edge.log')} warn;",
        "",
        "events {",
        "    worker_connections 1024;",
        "}",
        "",
        "http {",
        "    include /etc/nginx/mime.types;",
        "    default_type application/octet-stream;",
        f"    access_log {_path(s, 'log/edge-access.log')};",
        "    server_tokens off;",
        "    sendfile on;",
        "    client_max_body_size 10m;  # the API's bulk endpoint caps itself at 8 MB",
        f"    client_body_temp_path {temp}/body;",
        f"    proxy_temp_path {temp}/proxy;",
        f"    fastcgi_temp_path {temp}/fastcgi;",
        f"    uwsgi_temp_path {temp}/uwsgi;",
        f"    scgi_temp_path {temp}/scgi;",
        "    proxy_http_version 1.1;",
        "    proxy_read_timeout 300s;  # bulk API requests run for minutes (scripts/web.sh)",
        "    ssl_protocols TLSv1.2 TLSv1.3;",
        "    ssl_prefer_server_ciphers off;",
        "    ssl_session_cache shared:edge:1m;",
        "",
        "    # HTTP: ACME HTTP-01 challenges, and a redirect to HTTPS for everything else.",
        "    server {",
        f"        listen {listen}:{http_port} default_server;",
        "        server_name _;",
        f"        location ^~ {ACME_CHALLENGE_PREFIX} {{",
        f"            root {_path(s, ACME_WEBROOT)};",
        "            default_type text/plain;",
        "            try_files $uri =404;",
        "        }",
        "        location / {",
        f"            return 301 https://$host{_https_url_port(https_port)}$request_uri;",
        "        }",
        "    }",
        "",
        "    # HTTPS for the mail host and the portal's names (and any unknown name: the portal",
        "    # refuses those with 400).",
        "    server {",
        f"        listen {listen}:{https_port} ssl default_server;",
        f"        server_name {names};",
        f"        ssl_certificate {_path(s, NODE_CERT)};",
        f"        ssl_certificate_key {_path(s, NODE_KEY)};",
        "        error_page 502 503 504 =503 /.edge/unavailable;",
        "        location = /.edge/unavailable {",
        "            internal;",
        *_edge_headers(edge.headers, "            "),
        "            default_type text/plain;",
        '            return 503 "The portal is not answering; mail is not affected.\\n";',
        "        }",
        "        location / {",
        *_proxy(edge.upstream, "            "),
        "        }",
    ]
    if edge.webmail:
        lines += render_edge_webmail(
            public_dir=_path(s, WEBMAIL_PUBLIC), fpm_socket=_path(s, WEBMAIL_FPM_SOCKET),
            headers=_edge_headers(edge.headers, "                "),
        )
    elif edge.webmail_upstream:
        lines += ["        location /webmail/ {", *_proxy(edge.webmail_upstream, "            "),
                  "        }"]
    if edge.dav_upstream:
        lines += _dav_locations(edge, https_port)
    lines += [
        "    }",
        "",
        f"    include {_path(s, EDGE_SITES)};",
        "}",
    ]
    return "\n".join(lines) + "\n"


def _dav_locations(edge: EdgeConfig, https_port: int) -> list[str]:
    """/dav/ to Radicale, with the client's address for Dovecot's bans (X-Remote-Addr, always
    the edge's own view: a client's header of that name is overwritten) and the prefix it
    strips; the RFC 6764 well-known URIs and a bare /dav redirect there."""
    port = _https_url_port(https_port)
    lines = []
    for path in ("/.well-known/caldav", "/.well-known/carddav", "/dav"):
        lines += [f"        location = {path} {{",
                  *_edge_headers(edge.headers, "            "),
                  f"            return 301 https://$host{port}/dav/;",
                  "        }"]
    return [
        *lines,
        "        location /dav/ {",
        *_proxy(edge.dav_upstream, "            "),
        "            proxy_set_header X-Remote-Addr $remote_addr;",
        "            proxy_set_header X-Script-Name /dav;",
        "        }",
    ]


def render_edge_sites(
    *, state_dir: str, bind_address: str, https_port: int, edge: EdgeConfig,
    sites: Iterable[EdgeSite],
) -> str:
    """One HTTPS server per live domain for its service hosts, sorted by domain."""
    edge.check()
    s = state_dir
    listen = f"[{bind_address}]" if ":" in bind_address else bind_address
    lines = ["# Managed by Mailhost (mailhost/backend/edge.py): the live domains' service hosts."]
    paths = "|".join(re.escape(p) for p in SERVICE_PATHS)
    for site in sorted(sites, key=lambda x: x.domain):
        cert = _path(s, site.cert or NODE_CERT)
        key = _path(s, site.key or NODE_KEY)
        bimi = re.escape(f"/bimi/{_name(site.domain)}/logo.svg")
        lines += [
            "server {",
            f"    listen {listen}:{https_port} ssl;",
            f"    server_name {' '.join(site.names)};",
            f"    ssl_certificate {cert};",
            f"    ssl_certificate_key {key};",
            "    error_page 502 503 504 =503 /.edge/unavailable;",
            "    location = /.edge/unavailable {",
            "        internal;",
            *_edge_headers(edge.headers, "        "),
            "        default_type text/plain;",
            '        return 503 "Not answering right now.\\n";',
            "    }",
            f'    location ~ "^(?:{paths}|{bimi})$" {{',
            *_proxy(edge.upstream, "        "),
            "    }",
            "    location / {",
            *_edge_headers(edge.headers, "        "),
            "        return 404;",
            "    }",
            "}",
        ]
    return "\n".join(lines) + "\n"
