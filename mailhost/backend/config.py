"""A node's static configuration: `NodeConfig` and the pure renderers of every static file.

"Static" means the file depends only on the node (state directory, host name, addresses, ports,
limits), never on which domains or mailboxes exist: those live as rows in the node-local SQLite
lookup store (`mailhost.backend.lookup`) that Postfix and Dovecot query directly, and in the
OpenDKIM tables and Sieve scripts the reconciler writes. Renderers here do no I/O and read no
clock: the same `NodeConfig` always gives the same bytes (golden-file tested).

Layout of a state directory (every path below is relative to it):

  postfix/      main.cf, master.cf, sqlite-*.cf          Postfix config_directory
                tls-policy (the reconciler's)            per-domain outbound TLS overrides
  mta-sts/      mta-sts.json, mta-sts-daemon.yml,        the MTA-STS resolver (mtasts.py)
                cache.sqlite                             and its policy cache
  dovecot/      dovecot.conf, sql-*.conf.ext
  opendkim/     opendkim.conf, TrustedHosts, InternalHosts, KeyTable, SigningTable,
                keys/<domain>.<selector>.private      opendkim:opendkim, 0600
  tls/          cert.pem, key.pem                        self-signed on first start
  lookup/       lookup.sqlite                            root:postfix, dir 2770, file 0660
  bans/         bans.sqlite (the ban store)              root:postfix, dir 2770, file 0660
  banpolicy/    banpolicy.json, api-header (0600)        the ban policy server Dovecot asks
  mail/<home>/  a mailbox home (Maildir, Sieve scripts)  mail:mail (8:8), 0700, made on first
                use (by Dovecot, or the DAV server); .mailhost/ in it holds the portal's
                Sieve scripts (mailhost/backend/sieve.py)
  spool/        Postfix queue_directory
  lib/          Postfix data_directory, Dovecot state_dir
  sender-policy/ sender-policy.json                     the sender-policy milter's config
  run/          Dovecot base_dir (run/dovecot), OpenDKIM socket and pid (run/opendkim),
                the sender-policy milter's socket and pid (run/sender-policy), the ban
                policy server's pid (run/banpolicy)
  log/          postfix.log, dovecot.log, banpolicy.log, sender-policy.log, rspamd.log,
                unbound.log, inbound-guard.log
  rspamd/ unbound/ inbound/ sieve/   inbound filtering: see mailhost/backend/inbound.py
  certwatch/    certwatch.json    the certificate watcher's (mailhost/backend/certwatch.py)
  acme/         account.json, state.json (root only), live/<domain>/{cert,key}.pem, webroot/
  dav/          radicale.conf, dav.json, collections/collection-root/<address> → a link to
                mail/<home>/dav, made on the first DAV request (CalDAV/CardDAV: see
                mailhost/backend/dav.py)
  edge/         nginx.conf, sites.conf (the reconciler's), tmp/   the HTTPS front door: see
                mailhost/backend/edge.py; acme/webroot/ holds HTTP-01 challenges
"""

import dataclasses
import ipaddress
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from mailhost.backend.bans import BANS_DB, POSTFIX_BAN_QUERY, BanPolicy, policy_json
from mailhost.backend.dav import (
    DAV_CONFIG,
    DOVECOT_AUTH_SOCKET,
    RADICALE_CONFIG,
    render_dav_json,
    render_radicale_conf,
)
from mailhost.backend.edge import ACME_LIVE, EDGE_CONF, NODE_CERT, EdgeConfig, render_edge_conf
from mailhost.backend.forwarding import (
    DEFAULT_FORWARD_PORT,
    DEFAULT_SRS_FORWARD_PORT,
    DEFAULT_SRS_REVERSE_PORT,
    FORWARD_CLEANUP,
    FORWARD_DAEMON_NAME,
    FORWARD_TRANSPORT,
)
from mailhost.backend.inbound import (
    RSPAMD_MILTER_SOCKET,
    SPAM_SIEVE,
    InboundConfig,
    RedisTarget,
    dovecot_inbound_lines,
    render_inbound_files,
    smtp_inbound_options,
)
from mailhost.backend.lookup import LOOKUP_DB
from mailhost.backend.mailcrypt import ITERATE_QUERY as MAIL_CRYPT_ITERATE_QUERY
from mailhost.backend.mailcrypt import MAIL_CRYPT_DB
from mailhost.backend.mailcrypt import USER_QUERY as MAIL_CRYPT_USER_QUERY
from mailhost.backend.mailcrypt import USERDB_CONF as MAIL_CRYPT_USERDB
from mailhost.backend.peers import PEER_FILTER, PEER_TRANSPORT
from mailhost.backend.quotas import QUOTAS_DB
from mailhost.backend.relays import RELAY_HOSTS, RELAY_PASSWORDS, RELAY_TLS, nexthop
from mailhost.backend.senders import DOVECOT_QUERY as SENDERS_DOVECOT_QUERY
from mailhost.backend.senders import POSTFIX_QUERY as SENDERS_POSTFIX_QUERY
from mailhost.backend.senders import SENDERS_DB
from mailhost.backend.sieve import AFTER_SCRIPT, BEFORE_SCRIPT, LEGACY_ACTIVE_SCRIPT
from mailhost.backend.suppressions import SUPPRESSIONS_DB
from mailhost.backend.tls_policy import (
    MTASTS_SOCKET,
    POLICY_MAP,
    OutboundTls,
    postfix_main_cf_lines,
    render_mtasts_files,
)
from mailhost.backend.webmail import (
    WEBMAIL_CONFIG,
    WEBMAIL_FPM_CONF,
    WEBMAIL_MASTER_USERS,
    WebmailConfig,
    render_php_fpm_conf,
    render_roundcube_config,
)

# Debian's `mail` user owns every maildir; Dovecot's first_valid_uid admits exactly it.
MAIL_UID = 8
MAIL_GID = 8
REPORT_SPOOL = "reports/intake"  # relative to the state directory; a maildir
REPORT_TRANSPORT = "reports-intake"  # the master.cf service that writes into it
LOCAL_PART = re.compile(r"^[a-z0-9](?:[a-z0-9._-]{0,62}[a-z0-9])?$")
# OpenDKIM drops to this user; private keys must be readable by it alone.
OPENDKIM_USER = "opendkim"

PORT_NAMES = (
    "smtp", "submission", "submissions", "imap", "imaps", "managesieve", "internal", "authpolicy",
    "resolver", "http", "https", "dav", "forward", "srs", "srs_reverse", "stats", "doveadm",
)
# The environment variable each port is read from (mailhost/settings.py, `from_settings`).
PORT_ENV = {
    "smtp": "MAILHOST_SMTP_PORT", "submission": "MAILHOST_SUBMISSION_PORT",
    "submissions": "MAILHOST_SUBMISSIONS_PORT", "imap": "MAILHOST_IMAP_PORT",
    "imaps": "MAILHOST_IMAPS_PORT", "managesieve": "MAILHOST_MANAGESIEVE_PORT",
    "internal": "MAILHOST_INTERNAL_SMTP_PORT", "authpolicy": "MAILHOST_AUTHPOLICY_PORT",
    "resolver": "MAILHOST_RESOLVER_PORT", "http": "MAILHOST_HTTP_PORT",
    "https": "MAILHOST_HTTPS_PORT", "dav": "MAILHOST_DAV_PORT",
    "forward": "MAILHOST_FORWARD_PORT", "srs": "MAILHOST_SRS_PORT",
    "srs_reverse": "MAILHOST_SRS_REVERSE_PORT", "stats": "MAILHOST_DOVECOT_STATS_PORT",
    "doveadm": "MAILHOST_DOVEADM_PORT",
}  # fmt: skip
assert set(PORT_ENV) == set(PORT_NAMES), "every port has its variable"
DEFAULT_INTERNAL_PORT = 2526
# The ban policy server Dovecot asks on every login; loopback only, like "internal".
DEFAULT_AUTHPOLICY_PORT = 2527
# The node's own resolver (unbound) that Rspamd asks; loopback only, UDP and TCP.
DEFAULT_RESOLVER_PORT = 2553
# Radicale (CalDAV/CardDAV, mailhost/backend/dav.py); loopback only, the edge serves it at /dav/.
DEFAULT_DAV_PORT = 5232
# Dovecot's stats process serves its counters (OpenMetrics) here; loopback only.
DEFAULT_STATS_PORT = 2531
# Dovecot's doveadm server (mail copied between nodes when a domain moves, doveadm sync over
# TCP); on the node's bind address, authenticated by the install's doveadm password.
DEFAULT_DOVEADM_PORT = 2532
# A doveadm password as dovecot.conf may hold it literally (no quote, space or '<').
_DOVEADM_PASSWORD = re.compile(r"^[A-Za-z0-9_-]{16,200}$")
# Where the node keeps it (root only, 0600; Stack.write_config), read by Dovecot's config process.
DOVEADM_PASSWORD_FILE = "dovecot/doveadm-password"
# The dev/test relaxations exempt these from Dovecot's penalty and from bans; attack tests use
# other loopback addresses (127.0.0.9, …) and meet the production rules.
DEV_TRUSTED = ("127.0.0.1/32", "::1/128")
DEFAULT_MESSAGE_SIZE_LIMIT = 50 * 1024 * 1024
# How long Postfix keeps trying before it returns a message to its sender
# (SMTP_OUTBOUND_TTL_SECS).
DEFAULT_QUEUE_LIFETIME = 5 * 24 * 3600
# Dovecot's unix sockets live below the state dir and sun_path holds 107 bytes.
MAX_STATE_DIR_LENGTH = 60
APP_SENDERS_PASSDB = "dovecot/sql-app-senders.conf.ext"
# Dovecot 2.3's sql passdb refuses a query that returns more than one row ("Password query
# returned multiple matches"), so each app password gets a passdb of its own, tried in turn.
DEFAULT_APP_PASSWORD_SLOTS = 10

# The state dir is pasted into config files and SQL string literals: no quotes, no spaces.
_SAFE_PATH = re.compile(r"^/[A-Za-z0-9._/-]+$")
_HOSTNAME = re.compile(r"^(?=.{1,253}$)[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?$")
_LOOPBACK_HOST_PORT = re.compile(r"^127\.\d{1,3}\.\d{1,3}\.\d{1,3}:\d{1,5}$")
# The operator mailbox is pasted into a Postfix SQL query: no quote, no %, no space.
OPERATOR_MAILBOX = re.compile(
    r"^[a-z0-9](?:[a-z0-9._+-]*[a-z0-9_-])?@[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?$"
)

# The sender-policy milter (mailhost.backend.milter) listens here: socket root:postfix 0660.
SENDER_POLICY_SOCKET = "run/sender-policy/policy.sock"
SENDER_POLICY_CONFIG = "sender-policy/sender-policy.json"
# The event agent (mailhost.backend.events): its config, its store, and the LMTP socket that
# Postfix hands VERP bounces (bounces+<message id>@<hosted domain>) to.
EVENT_AGENT_CONFIG = "events/agent.json"
EVENTS_DB = "events/events.sqlite"
BOUNCE_SOCKET = "run/event-agent/bounces.sock"
CERT_WATCH_CONFIG = "certwatch/certwatch.json"
# Postfix's milter_macro_daemon_name per listener: the policy milter picks its rule by it and
# OpenDKIM signs only mail from these (MTA), never what the port-25 listener received.
SIGNING_LISTENERS = ("submission", "submissions", "internal")

HEADER = "Managed by Mailhost (mailhost/backend/config.py); local edits are overwritten."


@dataclass(frozen=True)
class NodeConfig:
    """Everything a node's static files depend on. Build it with `from_settings` in code."""

    state_dir: Path
    hostname: str
    bind_address: str
    ports: Mapping[str, int]
    message_size_limit: int = DEFAULT_MESSAGE_SIZE_LIMIT
    # Dev/test stack: no failed-login delay or penalty, and 127.0.0.1 never banned. Off unless
    # asked for (MAILHOST_STACK_DEV=true; the test suite's stacks ask).
    dev: bool = False
    # False when the state dir sits below a world-writable directory such as /tmp: OpenDKIM
    # then refuses every key ("451 4.7.1") although the key file itself is private.
    dkim_require_safe_keys: bool = True
    app_password_slots: int = DEFAULT_APP_PASSWORD_SLOTS
    # Login protection (mailhost.backend.bans): thresholds and never-banned networks.
    bans: BanPolicy = BanPolicy()
    # Inbound filtering: Rspamd, the resolver, greylisting, abuse limits (inbound.py).
    inbound: InboundConfig = InboundConfig()
    # Where a domain's postmaster@ and abuse@ go when its own target cannot receive
    # (MAILHOST_OPERATOR_MAILBOX); "" for nowhere.
    operator_mailbox: str = ""
    # Test harness only (MAILHOST_TEST_INTERNET_MX, "127.0.0.1:PORT"): mail for other domains goes
    # to the tests' fake internet MX there, and the queue retries within seconds. Empty in
    # production: Postfix then finds MX hosts in DNS like any sender.
    internet_mx: str = ""
    # Local parts that, at every hosted domain, are the report intake (DMARC rua/ruf and
    # TLS-RPT addresses the portal publishes): Postfix delivers them into the node's report
    # spool (REPORT_SPOOL), which the worker reads (reports.tasks); empty: no intake.
    report_local_parts: tuple[str, ...] = ()
    # The HTTPS front door (mailhost/backend/edge.py): the portal's upstream, its names, headers.
    edge: EdgeConfig = EdgeConfig()
    # How often the certificate watcher (certwatch.py) looks at the certificates, in seconds.
    cert_watch_seconds: float = 30.0
    # The install-wide default relay (Postfix's relayhost), "host:port"; "" to deliver direct.
    # Its login and TLS mode are node state (mailhost/backend/relays.py), like every relay's.
    default_relay: str = ""
    # Outbound lifetime: after this many seconds in the queue a message (or a bounce) is
    # returned to its sender with a DSN (SMTP_OUTBOUND_TTL_SECS).
    queue_lifetime_seconds: int = DEFAULT_QUEUE_LIFETIME
    # Outbound TLS posture: default level, DANE, DNSSEC, MTA-STS (tls_policy.py).
    outbound_tls: OutboundTls = OutboundTls()
    # The domain of forwarded mail's SRS return paths (MAILHOST_SRS_DOMAIN); "" for the mail
    # host name. See mailhost/backend/forwarding.py.
    srs_domain: str = ""
    # The shared secret of the nodes' doveadm servers (MAILHOST_DOVEADM_PASSWORD): the target
    # node of a domain move pulls the mail from the source's doveadm port with it. "": no
    # doveadm listener (a node alone never needs one).
    doveadm_password: str = ""
    # Where the doveadm server listens (MAILHOST_DOVEADM_BIND_ADDRESS); "" for bind_address.
    # A single node keeps it on loopback: nothing outside needs it, and it is an admin door.
    doveadm_bind_address: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "state_dir", Path(self.state_dir))
        object.__setattr__(self, "ports", dict(self.ports))
        object.__setattr__(self, "report_local_parts", tuple(self.report_local_parts))
        _check(self)

    @classmethod
    def from_settings(cls, state_dir: Path | str | None = None, **overrides) -> "NodeConfig":
        """The node config from Django settings; `state_dir` defaults to the settings' one.

        MAILHOST_STACK_DEV (true/false, default false) turns the dev/test relaxations on or off;
        MAILHOST_INTERNAL_SMTP_PORT (default 2526) is the loopback-only re-injection port,
        MAILHOST_AUTHPOLICY_PORT (default 2527) the loopback-only ban policy server's.
        """
        from django.conf import settings

        from mailhost.env import env_bool, env_int

        state = Path(state_dir or settings.MAILHOST_NODE_STATE_DIR)
        ports = dict(settings.MAILHOST_PORTS)
        ports.setdefault("internal", env_int("MAILHOST_INTERNAL_SMTP_PORT", DEFAULT_INTERNAL_PORT))
        ports.setdefault("authpolicy", env_int("MAILHOST_AUTHPOLICY_PORT", DEFAULT_AUTHPOLICY_PORT))
        ports.setdefault("resolver", env_int("MAILHOST_RESOLVER_PORT", DEFAULT_RESOLVER_PORT))
        ports.setdefault("dav", env_int("MAILHOST_DAV_PORT", DEFAULT_DAV_PORT))
        ports.setdefault("forward", env_int("MAILHOST_FORWARD_PORT", DEFAULT_FORWARD_PORT))
        ports.setdefault("srs", env_int("MAILHOST_SRS_PORT", DEFAULT_SRS_FORWARD_PORT))
        ports.setdefault("srs_reverse",
                         env_int("MAILHOST_SRS_REVERSE_PORT", DEFAULT_SRS_REVERSE_PORT))
        ports.setdefault("stats", env_int("MAILHOST_DOVECOT_STATS_PORT", DEFAULT_STATS_PORT))
        ports.setdefault("doveadm", env_int("MAILHOST_DOVEADM_PORT", DEFAULT_DOVEADM_PORT))
        values = {
            "state_dir": state,
            "hostname": settings.MAILHOST_HOSTNAME,
            "bind_address": settings.MAILHOST_BIND_ADDRESS,
            "ports": ports,
            "message_size_limit": getattr(
                settings, "MAILHOST_MESSAGE_SIZE_LIMIT", DEFAULT_MESSAGE_SIZE_LIMIT
            ),
            "dev": getattr(settings, "MAILHOST_STACK_DEV", None),
            "dkim_require_safe_keys": not below_world_writable(state),
            "bans": ban_policy_from_settings(settings),
            "inbound": inbound_config_from_settings(settings),
            "operator_mailbox": getattr(settings, "MAILHOST_OPERATOR_MAILBOX", ""),
            "internet_mx": getattr(settings, "MAILHOST_TEST_INTERNET_MX", ""),
            "report_local_parts": tuple(
                getattr(settings, "MAILHOST_REPORT_INTAKE_LOCAL_PARTS", ())
            ),
            "edge": edge_config_from_settings(settings),
            "cert_watch_seconds": float(getattr(settings, "MAILHOST_CERT_WATCH_SECONDS", 30)),
            "default_relay": default_relay_from_settings(settings),
            "queue_lifetime_seconds": int(
                getattr(settings, "SMTP_OUTBOUND_TTL_SECS", DEFAULT_QUEUE_LIFETIME)
            ),
            "outbound_tls": outbound_tls_from_settings(settings),
            "srs_domain": getattr(settings, "MAILHOST_SRS_DOMAIN", ""),
            "doveadm_password": getattr(settings, "MAILHOST_DOVEADM_PASSWORD", ""),
            "doveadm_bind_address": getattr(settings, "MAILHOST_DOVEADM_BIND_ADDRESS", ""),
        }
        if values["dev"] is None:
            values["dev"] = env_bool("MAILHOST_STACK_DEV", False)
        values.update(overrides)
        return cls(**values)

    # Paths the runner and the reconciler share (absolute).
    def path(self, relative: str) -> Path:
        return self.state_dir / relative

    @property
    def srs(self) -> str:
        """The SRS domain in force: MAILHOST_SRS_DOMAIN, else the mail host name."""
        return self.srs_domain or self.hostname

    @property
    def lookup_db(self) -> Path:
        return self.path(LOOKUP_DB)

    @property
    def bans_db(self) -> Path:
        return self.path(BANS_DB)

    @property
    def ban_policy(self) -> BanPolicy:
        """The thresholds in force: in dev mode 127.0.0.1 and ::1 are never banned either."""
        if not self.dev:
            return self.bans
        exempt = tuple(dict.fromkeys((*self.bans.exempt, *DEV_TRUSTED)))
        return BanPolicy.from_dict({**self.bans.as_dict(), "exempt": exempt})

    @property
    def banpolicy_header_file(self) -> Path:
        """'X-API-Key:<secret>': Dovecot sends it, the policy server checks it (root, 0600)."""
        return self.path("banpolicy/api-header")

    @property
    def mail_root(self) -> Path:
        return self.path("mail")

    @property
    def report_spool(self) -> Path:
        """A maildir Postfix's virtual(8) writes intake reports into (new/ holds the unread)."""
        return self.path(REPORT_SPOOL)

    def home_dir(self, home: str) -> Path:
        """A mailbox home: the `home` column of the lookup store names a directory here."""
        return self.mail_root / home

    @property
    def opendkim_key_table(self) -> Path:
        return self.path("opendkim/KeyTable")

    @property
    def opendkim_signing_table(self) -> Path:
        return self.path("opendkim/SigningTable")

    @property
    def opendkim_keys_dir(self) -> Path:
        return self.path("opendkim/keys")

    def dkim_key_path(self, domain: str, selector: str) -> Path:
        return self.opendkim_keys_dir / f"{domain}.{selector}.private"


def default_relay_from_settings(settings) -> str:
    """MAILHOST_RELAY_DEFAULT_HOST and _PORT as "host:port", or "" for no default relay."""
    host = getattr(settings, "MAILHOST_RELAY_DEFAULT_HOST", "")
    return f"{host}:{getattr(settings, 'MAILHOST_RELAY_DEFAULT_PORT', 587)}" if host else ""


def ban_policy_from_settings(settings) -> BanPolicy:
    """The MAILHOST_BAN_* settings as a BanPolicy (defaults where a setting is absent)."""
    default = BanPolicy()
    return BanPolicy(
        failures=getattr(settings, "MAILHOST_BAN_FAILURES", default.failures),
        window_seconds=getattr(settings, "MAILHOST_BAN_WINDOW_SECONDS", default.window_seconds),
        ban_seconds=getattr(settings, "MAILHOST_BAN_SECONDS", default.ban_seconds),
        account_failures=getattr(
            settings, "MAILHOST_BAN_ACCOUNT_FAILURES", default.account_failures
        ),
        account_delay_seconds=getattr(
            settings, "MAILHOST_BAN_ACCOUNT_DELAY_SECONDS", default.account_delay_seconds
        ),
        exempt=tuple(getattr(settings, "MAILHOST_BAN_EXEMPT_NETWORKS", ())),
    )


def edge_config_from_settings(settings) -> EdgeConfig:
    """The edge from settings: the portal on 127.0.0.1:MAILHOST_WEB_PORT, the portal URL's host,
    the security headers the portal itself sends (Django's SecurityMiddleware and
    XFrameOptionsMiddleware, the CSP), and MAILHOST_EDGE_WEBMAIL_UPSTREAM/_DAV_UPSTREAM."""
    from urllib.parse import urlparse

    headers: list[tuple[str, str]] = []
    if getattr(settings, "SECURE_HSTS_SECONDS", 0):
        value = f"max-age={settings.SECURE_HSTS_SECONDS}"
        if getattr(settings, "SECURE_HSTS_INCLUDE_SUBDOMAINS", False):
            value += "; includeSubDomains"
        if getattr(settings, "SECURE_HSTS_PRELOAD", False):
            value += "; preload"
        headers.append(("Strict-Transport-Security", value))
    if getattr(settings, "SECURE_CONTENT_TYPE_NOSNIFF", True):
        headers.append(("X-Content-Type-Options", "nosniff"))
    headers.append(("X-Frame-Options", getattr(settings, "X_FRAME_OPTIONS", "DENY")))
    if referrer := getattr(settings, "SECURE_REFERRER_POLICY", "same-origin"):
        headers.append(("Referrer-Policy", referrer))
    if coop := getattr(settings, "SECURE_CROSS_ORIGIN_OPENER_POLICY", "same-origin"):
        headers.append(("Cross-Origin-Opener-Policy", coop))
    directives = getattr(settings, "CONTENT_SECURITY_POLICY", {}).get("DIRECTIVES", {})
    if directives:  # in the settings' order (django-csp's own order varies between processes)
        policy = "; ".join(f"{name} {' '.join(values)}" for name, values in directives.items())
        headers.append(("Content-Security-Policy", policy))
    portal_host = (urlparse(getattr(settings, "MAILHOST_PORTAL_URL", "")).hostname or "").lower()
    return EdgeConfig(
        upstream=f"127.0.0.1:{getattr(settings, 'MAILHOST_WEB_PORT', 8000)}",
        # The portal URL's host (the mail host's is always served; an IP address needs no name).
        portal_names=(portal_host,) if portal_host.strip("0123456789.:[]") else (),
        headers=tuple(headers),
        webmail_upstream=getattr(settings, "MAILHOST_EDGE_WEBMAIL_UPSTREAM", ""),
        dav_upstream=getattr(settings, "MAILHOST_EDGE_DAV_UPSTREAM", ""),
        webmail=bool(getattr(settings, "MAILHOST_WEBMAIL", False)),
    )


def outbound_tls_from_settings(settings) -> OutboundTls:
    """The SMTP_OUTBOUND_* TLS settings (mailhost/backend/tls_policy.py)."""
    default = OutboundTls()
    return OutboundTls(
        tls_mode=getattr(settings, "SMTP_OUTBOUND_TLS_MODE", default.tls_mode),
        dane_mode=getattr(settings, "SMTP_OUTBOUND_DANE_MODE", default.dane_mode),
        dnssec_validate=getattr(settings, "SMTP_OUTBOUND_DNSSEC_VALIDATE",
                                default.dnssec_validate),
        mta_sts_enforce=getattr(settings, "SMTP_OUTBOUND_MTA_STS_ENFORCE",
                                default.mta_sts_enforce),
        ca_file=getattr(settings, "MAILHOST_OUTBOUND_TLS_CA_FILE", default.ca_file),
    )


def inbound_config_from_settings(settings) -> InboundConfig:
    """The MAILHOST_INBOUND_* / MAILHOST_GREYLIST_* / MAILHOST_RESOLVER_* settings."""
    default = InboundConfig()

    def value(name: str, fallback):
        return getattr(settings, name, fallback)

    cache = value("MAILHOST_RSPAMD_CACHE_DIR", None)
    return InboundConfig(
        resolver_mode=value("MAILHOST_RESOLVER_MODE", default.resolver_mode),
        resolver_upstreams=tuple(value("MAILHOST_RESOLVER_UPSTREAMS", ())),
        redis=RedisTarget.from_url(value("MAILHOST_RSPAMD_REDIS_URL", "")),
        junk_score=float(value("MAILHOST_INBOUND_JUNK_SCORE", default.junk_score)),
        reject_score=float(value("MAILHOST_INBOUND_REJECT_SCORE", default.reject_score)),
        greylist_score=float(value("MAILHOST_GREYLIST_SCORE", default.greylist_score)),
        greylist_delay_seconds=value("MAILHOST_GREYLIST_DELAY_SECONDS",
                                     default.greylist_delay_seconds),
        greylist_expire_seconds=value("MAILHOST_GREYLIST_EXPIRE_SECONDS",
                                      default.greylist_expire_seconds),
        breaker_deferred_threshold=value("MAILHOST_GREYLIST_BREAKER_DEFERRED",
                                         default.breaker_deferred_threshold),
        connection_rate_limit=value("MAILHOST_SMTP_CONNECTION_RATE_LIMIT",
                                    default.connection_rate_limit),
        message_rate_limit=value("MAILHOST_SMTP_MESSAGE_RATE_LIMIT", default.message_rate_limit),
        max_recipients=value("MAILHOST_SMTP_MAX_RECIPIENTS", default.max_recipients),
        xclient_hosts=tuple(value("MAILHOST_SMTP_XCLIENT_HOSTS", ())),
        hs_cache_dir=Path(cache) if cache else None,
        history_rows=value("MAILHOST_RSPAMD_HISTORY_ROWS", default.history_rows),
        bayes_expire_days=value("MAILHOST_RSPAMD_BAYES_EXPIRE_DAYS", default.bayes_expire_days),
    )


def below_world_writable(path: Path) -> bool:
    """Whether any existing ancestor of `path` is world-writable (e.g. /tmp). Reads the disk."""
    for parent in Path(path).resolve().parents:
        try:
            if parent.stat().st_mode & 0o002:
                return True
        except FileNotFoundError:
            continue
    return False


def _check(cfg: NodeConfig) -> None:
    state = str(cfg.state_dir)
    if not _SAFE_PATH.match(state) or "/../" in state + "/":
        raise ValueError(f"state_dir must be an absolute plain path, got {state!r}")
    if len(state) > MAX_STATE_DIR_LENGTH:
        raise ValueError(
            f"state_dir is longer than {MAX_STATE_DIR_LENGTH} characters: Dovecot's sockets "
            "live below it and unix socket paths are limited to 107 bytes."
        )
    if not _HOSTNAME.match(cfg.hostname):
        raise ValueError(f"hostname {cfg.hostname!r} is not a lower-case host name")
    if cfg.srs_domain and (not _HOSTNAME.match(cfg.srs_domain) or ".." in cfg.srs_domain):
        raise ValueError(f"srs_domain {cfg.srs_domain!r} is not a lower-case domain name")
    ipaddress.ip_address(cfg.bind_address)  # raises ValueError
    if cfg.doveadm_bind_address:
        ipaddress.ip_address(cfg.doveadm_bind_address)
    if cfg.doveadm_password and not _DOVEADM_PASSWORD.match(cfg.doveadm_password):
        raise ValueError("doveadm_password must be 16–200 letters, digits, '-' or '_'")
    missing = [name for name in PORT_NAMES if name not in cfg.ports]
    if missing:
        raise ValueError(f"ports lacks {', '.join(missing)}")
    numbers = [cfg.ports[name] for name in PORT_NAMES]
    if any(not isinstance(p, int) or not 1 <= p <= 65535 for p in numbers):
        raise ValueError(f"ports must be 1–65535: {cfg.ports}")
    if len(set(numbers)) != len(numbers):
        raise ValueError(f"two services share a port: {cfg.ports}")
    if cfg.operator_mailbox and (
        not OPERATOR_MAILBOX.match(cfg.operator_mailbox) or ".." in cfg.operator_mailbox
    ):
        raise ValueError(f"operator_mailbox {cfg.operator_mailbox!r} is not a plain address")
    if cfg.internet_mx and not _LOOPBACK_HOST_PORT.match(cfg.internet_mx):
        raise ValueError(f"internet_mx {cfg.internet_mx!r} is not 127.x.y.z:port")
    for local in cfg.report_local_parts:
        if not LOCAL_PART.match(local) or ".." in local:
            raise ValueError(f"report local part {local!r} is not a plain lower-case local part")
    cfg.edge.check()
    if not 0.1 <= cfg.cert_watch_seconds <= 86400:
        raise ValueError("cert_watch_seconds must be 0.1–86400")
    if cfg.default_relay:
        host, _, port = cfg.default_relay.rpartition(":")
        nexthop(host, int(port) if port.isdigit() else -1)  # raises UnsafeRelay (a ValueError)
    if not 60 <= cfg.queue_lifetime_seconds <= 100 * 86400:
        raise ValueError("queue_lifetime_seconds must be 60 s – 100 days")
    if cfg.message_size_limit < 1024 or cfg.app_password_slots < 0:
        raise ValueError("message_size_limit must be ≥ 1024 and app_password_slots ≥ 0")


# --- rendering -------------------------------------------------------------------------------


def render_static_files(cfg: NodeConfig) -> dict[str, bytes]:
    """{path relative to the state dir: content} for every static file of the node, sorted."""
    s = cfg.state_dir
    renderers: dict[str, Callable[[NodeConfig], str]] = {
        "postfix/main.cf": render_postfix_main_cf,
        "postfix/master.cf": render_postfix_master_cf,
        "dovecot/dovecot.conf": render_dovecot_conf,
        "dovecot/sql-passdb.conf.ext": render_dovecot_sql_passdb,
        "dovecot/sql-userdb.conf.ext": render_dovecot_sql_userdb,
        APP_SENDERS_PASSDB: render_dovecot_sql_app_senders,
        MAIL_CRYPT_USERDB: render_dovecot_sql_mailcrypt_userdb,
        "opendkim/opendkim.conf": render_opendkim_conf,
        "opendkim/TrustedHosts": render_opendkim_trusted_hosts,
        "opendkim/InternalHosts": render_opendkim_internal_hosts,
        SENDER_POLICY_CONFIG: render_sender_policy_json,
        "banpolicy/banpolicy.json": render_banpolicy_json,
        EVENT_AGENT_CONFIG: render_event_agent_json,
        CERT_WATCH_CONFIG: render_certwatch_json,
    }
    files = {path: render(cfg).encode() for path, render in renderers.items()}
    for path, text in render_postfix_sqlite_maps(cfg).items():
        files[path] = text.encode()
    for slot in range(cfg.app_password_slots):
        files[app_password_passdb_path(slot)] = render_dovecot_sql_app_passdb(cfg, slot).encode()
    files |= {path: text.encode() for path, text in render_inbound_files(cfg).items()}
    resolver = f"127.0.0.1:{cfg.ports['resolver']}"
    files |= {path: text.encode()
              for path, text in render_mtasts_files(str(s), resolver, cfg.outbound_tls).items()}
    if cfg.edge.webmail:
        wm = webmail_config(cfg)
        files[WEBMAIL_CONFIG] = render_roundcube_config(wm).encode()
        files[WEBMAIL_FPM_CONF] = render_php_fpm_conf(wm).encode()
    files[RADICALE_CONFIG] = render_radicale_conf(
        state_dir=cfg.state_dir, port=cfg.ports["dav"]).encode()
    files[DAV_CONFIG] = render_dav_json(state_dir=cfg.state_dir).encode()
    files[EDGE_CONF] = render_edge_conf(
        state_dir=str(cfg.state_dir), hostname=cfg.hostname, bind_address=cfg.bind_address,
        http_port=cfg.ports["http"], https_port=cfg.ports["https"], edge=edge_with_dav(cfg),
    ).encode()
    return dict(sorted(files.items()))


def _net(address: str) -> str:
    return f"{address}/128" if ":" in address else f"{address}/32"


def webmail_config(cfg: NodeConfig) -> WebmailConfig:
    """Roundcube reaches Dovecot and Postfix on the node's own address (loopback if it binds
    every address): the master login it uses for SSO is refused from anywhere else."""
    every = ("0.0.0.0", "::", "")  # noqa: S104 (compared with, not bound to)
    host = "127.0.0.1" if cfg.bind_address in every else cfg.bind_address
    return WebmailConfig(
        state_dir=str(cfg.state_dir), hostname=cfg.hostname, host=host,
        imap_port=cfg.ports["imap"], submission_port=cfg.ports["submission"],
        managesieve_port=cfg.ports["managesieve"],
    )
def edge_with_dav(cfg: NodeConfig) -> EdgeConfig:
    """The edge sends /dav/ to the node's own Radicale unless MAILHOST_EDGE_DAV_UPSTREAM names
    another server."""
    if cfg.edge.dav_upstream:
        return cfg.edge
    return dataclasses.replace(cfg.edge, dav_upstream=f"127.0.0.1:{cfg.ports['dav']}")


def _lines(*lines: str) -> str:
    return "\n".join(lines) + "\n"


# --- Postfix ---------------------------------------------------------------------------------

# Lookup semantics (Postfix folds keys to lower case and escapes %s inside the quotes).
POSTFIX_QUERIES = {
    "domains": "SELECT name FROM domains WHERE name='%s'",
    # Also the send API's VERP return paths, bounces+<message id>@<hosted domain> (see verp).
    "mailboxes": "SELECT 'OK' FROM mailboxes WHERE address='%s' AND can_receive=1 "
    "UNION ALL {verp_ok}",
    # A mailbox maps to itself, which ends alias expansion: a real mailbox wins over a catch-all
    # '@domain' alias, a disabled one included (it is refused by recipient-access below).
    # Then a role address (postmaster@, abuse@: see postfix_role_query), only if neither.
    "aliases": "SELECT destinations FROM aliases WHERE address='%s' "
    "UNION ALL SELECT address FROM mailboxes WHERE address='%s' "
    "UNION ALL {verp_self} UNION ALL {roles}{intake_self}",
    "sender-logins": "SELECT login FROM sender_logins WHERE address='%s'",
    # Postfix counts an address the alias map lists as known, so a disabled mailbox (which
    # maps to itself, keeping the catch-all off it) would pass RCPT: refuse it explicitly.
    "recipient-access": "SELECT '550 5.2.1 Mailbox disabled' FROM mailboxes "
    "WHERE address='%s' AND can_receive=0",
    # A VERP bounce goes to the event agent, whatever else the domain routes where.
    "verp": "SELECT {verp_transport} FROM domains WHERE {verp_match}",
}
# bounces+<32 hex>@<a hosted domain>: a '+' address no hosted name can take ('+' is the tag
# delimiter). Only %s: Postfix suppresses a whole query using %u or %d for a key with an empty
# local part, such as the catch-all lookup '@domain'. The domain is the text after the 41st
# character (bounces+ and 32 characters and @), matched by the indexed name. '%%' is a
# literal % to Postfix.
VERP_MATCH = "name = substr('%s', 42) AND '%s' LIKE 'bounces+%%' AND substr('%s', 41, 1) = '@'"
VERP_QUERIES = {
    # Accepted at RCPT like a mailbox…
    "verp_ok": f"SELECT 'OK' FROM domains WHERE {VERP_MATCH}",  # noqa: S608
    # …and mapped to itself, so a catch-all alias of the domain cannot take it.
    "verp_self": f"SELECT '%s' FROM domains WHERE {VERP_MATCH}",  # noqa: S608
}
# Maps on other stores of the node: {name: (store relative to the state dir, query)}.
POSTFIX_STORE_QUERIES = {
    "bans": (BANS_DB, POSTFIX_BAN_QUERY),
    "app-sender-logins": (SENDERS_DB, SENDERS_POSTFIX_QUERY),
}


def postfix_role_query(cfg: NodeConfig) -> str:
    """A role row's target while it can receive (a mailbox that receives, or an alias), else
    the install's operator mailbox, never the role address itself (no loop when the operator
    mailbox is one). The operator mailbox is a checked literal (NodeConfig): no quote, no %."""
    live = (
        "EXISTS (SELECT 1 FROM mailboxes m WHERE m.address = r.target AND m.can_receive = 1) "
        "OR EXISTS (SELECT 1 FROM aliases a WHERE a.address = r.target)"
    )
    return (
        "SELECT target FROM (SELECT r.address AS address, "  # noqa: S608 (checked, see above)
        f"CASE WHEN {live} THEN r.target ELSE '{cfg.operator_mailbox}' END AS target "
        "FROM role_routes r WHERE r.address='%s' "
        "AND NOT EXISTS (SELECT 1 FROM aliases WHERE address='%s') "
        "AND NOT EXISTS (SELECT 1 FROM mailboxes WHERE address='%s')) "
        "WHERE target <> '' AND target <> address"
    )


def report_intake_condition(cfg: NodeConfig) -> str:
    """SQL true for a report intake address ('%s' is the recipient) of a hosted domain.

    Written with substr/instr rather than Postfix's %u/%d, which would suppress the whole
    query for the '@domain' keys the alias map is also asked (and so break catch-alls). The
    local parts are checked literals (NodeConfig): no quote, no %."""
    locals_ = ", ".join(f"'{local}'" for local in cfg.report_local_parts)
    return (
        "name = substr('%s', instr('%s', '@') + 1) "
        f"AND substr('%s', 1, instr('%s', '@') - 1) IN ({locals_})"
    )


def postfix_intake_query(cfg: NodeConfig) -> str:
    """The intake map: the transport for an intake address, and (as a mailbox map) its
    existence at RCPT. Never matches when no local part is configured."""
    if not cfg.report_local_parts:
        return "SELECT 'x' WHERE 0"
    return (f"SELECT '{REPORT_TRANSPORT}:' FROM domains "  # noqa: S608 (checked literals)
            f"WHERE {report_intake_condition(cfg)}")


# The domain part of the key '%s' (the whole key when it has no '@').
_KEY_DOMAIN = "substr('%s', instr('%s', '@') + 1)"


def postfix_forwards_query(cfg: NodeConfig) -> str:
    """sender_dependent_default_transport_maps: mail that leaves for another domain with a
    sender neither hosted here nor in the SRS domain can only be forwarded mail (nothing else
    may relay), so it goes through the forwarding listener (SRS, ARC). A null sender ('<>')
    goes direct: a forwarded bounce has no return path to rewrite."""
    return (
        f"SELECT '{FORWARD_TRANSPORT}:[127.0.0.1]:{cfg.ports['forward']}' "  # noqa: S608
        f"WHERE instr('%s', '@') > 0 AND {_KEY_DOMAIN} <> '{cfg.srs}' "
        f"AND NOT EXISTS (SELECT 1 FROM domains WHERE name = {_KEY_DOMAIN})"
    )


def postfix_srs_exempt_query(cfg: NodeConfig) -> str:
    """The forwarding cleanup's first sender_canonical map: a sender of a hosted domain, or
    one already in the SRS domain, maps to itself (postsrsd is not asked). The SRS domain is
    a checked host name (NodeConfig): no quote, no %."""
    return (
        "SELECT '%s' WHERE EXISTS (SELECT 1 FROM domains WHERE name = "  # noqa: S608
        f"{_KEY_DOMAIN}) OR {_KEY_DOMAIN} = '{cfg.srs}'"
    )


def postfix_map(cfg: NodeConfig, name: str) -> str:
    return f"sqlite:{cfg.path(f'postfix/sqlite-{name}.cf')}"


def render_postfix_sqlite_maps(cfg: NodeConfig) -> dict[str, str]:
    # An intake address maps to itself: alias expansion ends there, so a catch-all never
    # takes the domain's reports away from the intake.
    intake_self = (
        f" UNION ALL SELECT '%s' FROM domains WHERE {report_intake_condition(cfg)}"  # noqa: S608
        if cfg.report_local_parts else ""
    )
    fills = {"{roles}": postfix_role_query(cfg), "{intake_self}": intake_self,
             "{verp_match}": VERP_MATCH,
             # The state dir holds no quote (NodeConfig), so it is safe in a literal.
             "{verp_transport}": f"'lmtp:unix:{cfg.path(BOUNCE_SOCKET)}'",
             **{f"{{{name}}}": query for name, query in VERP_QUERIES.items()}}
    queries = {}
    for name, query in POSTFIX_QUERIES.items():
        for placeholder, text in fills.items():
            query = query.replace(placeholder, text)
        queries[name] = (LOOKUP_DB, query)
    queries["report-intake"] = (LOOKUP_DB, postfix_intake_query(cfg))
    queries["forwards"] = (LOOKUP_DB, postfix_forwards_query(cfg))
    queries["srs-exempt"] = (LOOKUP_DB, postfix_srs_exempt_query(cfg))
    queries |= POSTFIX_STORE_QUERIES
    return {
        f"postfix/sqlite-{name}.cf": _lines(
            f"# {HEADER}",
            f"dbpath = {cfg.path(store)}",
            f"query = {query}",
        )
        for name, (store, query) in queries.items()
    }


def render_postfix_main_cf(cfg: NodeConfig) -> str:
    s = cfg.state_dir
    return _lines(
        f"# {HEADER}",
        "compatibility_level = 3.6",
        f"myhostname = {cfg.hostname}",
        "myorigin = $myhostname",
        "# Every hosted domain is virtual: nothing is delivered locally.",
        "mydestination =",
        "local_recipient_maps =",
        "local_transport = error:5.1.1 local delivery is disabled",
        "alias_maps =",
        "alias_database =",
        "# Only the loopback-only 'internal' listener trusts mynetworks (Dovecot's Sieve",
        "# redirect/vacation and local services); the public ports never do.",
        "mynetworks = 127.0.0.0/8 [::1]/128",
        f"inet_interfaces = {cfg.bind_address}",
        "inet_protocols = all",
        f"queue_directory = {s}/spool",
        f"data_directory = {s}/lib/postfix",
        "mail_owner = postfix",
        "setgid_group = postdrop",
        "# No syslog here: postlogd writes this file (needs the postlog service in master.cf).",
        f"maillog_file = {s}/log/postfix.log",
        f"maillog_file_prefixes = {s}/log",
        "biff = no",
        "append_dot_mydomain = no",
        "readme_directory = no",
        "recipient_delimiter = +",
        f"message_size_limit = {cfg.message_size_limit}",
        "mailbox_size_limit = 0",
        "",
        "# Hosted mail: rows in the node-local SQLite store, read on every lookup.",
        f"virtual_mailbox_domains = {postfix_map(cfg, 'domains')}",
        f"virtual_mailbox_maps = {postfix_map(cfg, 'mailboxes')}, "
        f"{postfix_map(cfg, 'report-intake')}",
        f"virtual_alias_maps = {postfix_map(cfg, 'aliases')}",
        "# Forwarded mail's return paths (SRS0=…@<SRS domain>, mailhost/backend/forwarding.py):",
        "# postsrsd's reverse table maps a valid one back to the original sender, in smtpd's",
        "# recipient check too; a forged or expired one is unknown (550 5.1.1).",
        f"virtual_alias_domains = {cfg.srs}",
        f"recipient_canonical_maps = tcp:127.0.0.1:{cfg.ports['srs_reverse']}",
        "recipient_canonical_classes = envelope_recipient",
        f"virtual_transport = lmtp:unix:{s}/run/dovecot/lmtp",
        "# Mailboxes first, then application senders (send-only logins, mailhost/backend/",
        "# senders.py): an address a mailbox owns is never an application's.",
        f"smtpd_sender_login_maps = {postfix_map(cfg, 'sender-logins')}, "
        f"{postfix_map(cfg, 'app-sender-logins')}",
        "smtpd_recipient_restrictions = check_recipient_access "
        f"{postfix_map(cfg, 'recipient-access')}",
        "# The send API's return paths (bounces+<id>@<domain>) go to the node's event agent;",
        "# DMARC and TLS reports sent to a domain's intake addresses go to the node's report",
        "# spool (the reports-intake service in master.cf), never to a mailbox: the worker reads",
        "# the spool, and reports keep arriving while the portal is down.",
        f"transport_maps = {_transport_maps(cfg)}",
        "# Forwarded mail (a sender not hosted here, to another domain) leaves through the",
        "# forwarding listener: SRS and ARC (mailhost/backend/forwarding.py).",
        f"sender_dependent_default_transport_maps = {postfix_map(cfg, 'forwards')}",
        "# Mail for another node's domains takes that path too (peer-transport): one recipient",
        "# per message, as the listener picks each one's node by FILTER (mailhost/backend/",
        "# peers.py).",
        f"{FORWARD_TRANSPORT}_destination_recipient_limit = 1",
        "",
        "# Login protection: an address the ban store bans (too many failed logins on any",
        "# service, see mailhost/backend/bans.py) gets 421 and is disconnected. The MX port",
        "# checks at connect (smtpd_delay_reject=no there); on the submission ports Dovecot",
        "# refuses its AUTH, so it cannot get past RCPT.",
        f"smtpd_client_restrictions = check_client_access {postfix_map(cfg, 'bans')}",
        "# A second, coarser guard from Postfix's anvil: AUTH commands per client per minute.",
        "smtpd_client_auth_rate_limit = 30",
        "",
        "smtpd_banner = $myhostname ESMTP",
        "smtpd_helo_required = yes",
        "disable_vrfy_command = yes",
        "# No open relay: only authenticated clients relay; AUTH is offered on submission only.",
        "smtpd_relay_restrictions = permit_sasl_authenticated, reject_unauth_destination",
        "smtpd_sasl_auth_enable = no",
        "smtpd_sasl_type = dovecot",
        f"smtpd_sasl_path = {s}/run/dovecot/auth-postfix",
        "smtpd_sasl_security_options = noanonymous",
        "smtpd_sasl_authenticated_header = no",
        "",
        f"smtpd_tls_cert_file = {s}/tls/cert.pem",
        f"smtpd_tls_key_file = {s}/tls/key.pem",
        "smtpd_tls_security_level = may",
        "smtpd_tls_auth_only = yes",
        "smtpd_tls_mandatory_protocols = >=TLSv1.2",
        "smtpd_tls_received_header = yes",
        *_relay_lines(cfg),
        "",
        # The relays' TLS modes are keyed by next hop ([host]:port), the policy's by recipient
        # domain: one list, the relays' first (Postfix reads one smtp_tls_policy_maps).
        *postfix_main_cf_lines(str(s), cfg.outbound_tls,
                               first_maps=[f"texthash:{s}/{RELAY_TLS}"]),
        "",
        "# DKIM: OpenDKIM over a unix socket (inet cost ~90 ms per message); a broken signer",
        "# shows as 451, never as unsigned mail. The port-25 listener only verifies (OpenDKIM",
        "# signs for the listeners named in its MTA list alone); the submission and internal",
        "# listeners put the sender-policy milter first, so OpenDKIM only ever signs a message",
        "# whose From: (or envelope identity) the policy has checked. A dead or failing policy",
        "# milter is a 451 too (milter_default_action), never unchecked mail.",
        "# The MX listener (port 25) takes the default: Rspamd (SPF, DKIM, DMARC, ARC, spam,",
        "# greylisting; see mailhost/backend/inbound.py). A dead Rspamd is a 451, never",
        "# unfiltered mail.",
        f"smtpd_milters = unix:{s}/{RSPAMD_MILTER_SOCKET}",
        f"mailhost_sender_milters = unix:{s}/{SENDER_POLICY_SOCKET} "
        f"unix:{s}/run/opendkim/opendkim.sock",
        "# Nothing injects with sendmail/pickup here (Dovecot and the portal use the internal",
        "# port), and that path has no login or listener to check: it never reaches the signer.",
        "non_smtpd_milters =",
        "milter_default_action = tempfail",
        "milter_protocol = 6",
        *_internet_mx_lines(cfg),
    )


def _relay_lines(cfg: NodeConfig) -> list[str]:
    """Relays (smarthosts, mailhost/backend/relays.py) and how long mail may wait."""
    s = cfg.state_dir
    default = ""
    if cfg.default_relay:
        host, _, port = cfg.default_relay.rpartition(":")
        default = nexthop(host, int(port))
    elif cfg.internet_mx:  # test harness: the fake internet MX takes what no relay takes
        host, _, port = cfg.internet_mx.rpartition(":")
        default = nexthop(host, int(port))
    return [
        "",
        "# Relays: a hosted domain's mail goes through its relay (or its organisation's), chosen",
        "# by the envelope sender's domain; the rest through the install-wide default relay, if",
        "# any, else direct to the recipient's MX. The SMTP client logs in with the sender's",
        "# credentials (the password table is root:postfix 0640) and holds each relay to its TLS",
        "# mode; passwords never cross a connection without TLS. OpenDKIM has signed the mail",
        "# before it reaches the queue: a relay carries mail we signed.",
        f"relayhost = {default}".rstrip(),
        f"sender_dependent_relayhost_maps = texthash:{s}/{RELAY_HOSTS}",
        "smtp_sasl_auth_enable = yes",
        f"smtp_sasl_password_maps = texthash:{s}/{RELAY_PASSWORDS}",
        "smtp_sender_dependent_authentication = yes",
        "smtp_sasl_security_options = noplaintext, noanonymous",
        "smtp_sasl_tls_security_options = noanonymous",
        "# A relay in 'verified' mode is checked against the system's CA certificates; its TLS",
        "# mode is in smtp_tls_policy_maps (with the outbound TLS policy, below).",
        "tls_append_default_CA = yes",
        "# After this long in the queue the sender gets a DSN (SMTP_OUTBOUND_TTL_SECS).",
        f"maximal_queue_lifetime = {cfg.queue_lifetime_seconds}s",
        f"bounce_queue_lifetime = {cfg.queue_lifetime_seconds}s",
    ]


def _transport_maps(cfg: NodeConfig) -> str:
    """VERP bounces and report intake first (hosted addresses), then the domains other nodes
    host: to those nodes over SMTP (mailhost/backend/peers.py)."""
    return (f"{postfix_map(cfg, 'verp')}, {postfix_map(cfg, 'report-intake')}, "
            f"texthash:{cfg.path(PEER_TRANSPORT)}")


POSTFIX_BACKOFF = (300, 4000)  # Postfix's defaults, which main.cf keeps outside the tests
TEST_BACKOFF = (1, 2)


def _internet_mx_lines(cfg: NodeConfig) -> list[str]:
    """Test harness only: absent unless the harness asks for it."""
    if not cfg.internet_mx:
        return []
    return [
        "",
        "# Test harness only (MAILHOST_TEST_INTERNET_MX): every other domain is the tests'",
        "# internet, a fake MX on loopback: the relayhost above unless a default relay is set",
        "# (the lowest next hop, so forwarded mail and relays still take their own paths",
        "# first); deferred mail is retried within seconds, not minutes, and a delivery agent",
        "# that failed (a reload while it started) is tried again after a second, not a minute.",
        "queue_run_delay = 1s",
        "transport_retry_time = 1s",
        f"minimal_backoff_time = {TEST_BACKOFF[0]}s",
        f"maximal_backoff_time = {TEST_BACKOFF[1]}s",
    ]


# Options shared by the two client-submission listeners (587 STARTTLS, 465 implicit TLS).
_SUBMISSION_OPTIONS = (
    "smtpd_sasl_auth_enable=yes",
    "smtpd_tls_auth_only=yes",
    "smtpd_tls_mandatory_protocols=>=TLSv1.2",
    "smtpd_client_restrictions=permit_sasl_authenticated,reject",
    "smtpd_sender_restrictions=reject_sender_login_mismatch",
    "smtpd_relay_restrictions=permit_sasl_authenticated,reject",
)

# Postfix's own services, as in Debian's master.cf but never chrooted (paths live in the state
# dir, outside any chroot).
_MASTER_SERVICES = (
    ("pickup", "unix", "n", "-", "n", "60", "1", "pickup"),
    ("cleanup", "unix", "n", "-", "n", "-", "0", "cleanup"),
    ("qmgr", "unix", "n", "-", "n", "300", "1", "qmgr"),
    ("tlsmgr", "unix", "-", "-", "n", "1000?", "1", "tlsmgr"),
    ("rewrite", "unix", "-", "-", "n", "-", "-", "trivial-rewrite"),
    ("bounce", "unix", "-", "-", "n", "-", "0", "bounce"),
    ("defer", "unix", "-", "-", "n", "-", "0", "bounce"),
    ("trace", "unix", "-", "-", "n", "-", "0", "bounce"),
    ("verify", "unix", "-", "-", "n", "-", "1", "verify"),
    ("flush", "unix", "n", "-", "n", "1000?", "0", "flush"),
    ("proxymap", "unix", "-", "-", "n", "-", "-", "proxymap"),
    ("proxywrite", "unix", "-", "-", "n", "-", "1", "proxymap"),
    ("smtp", "unix", "-", "-", "n", "-", "-", "smtp"),
    ("relay", "unix", "-", "-", "n", "-", "-", "smtp"),
    ("showq", "unix", "n", "-", "n", "-", "-", "showq"),
    ("error", "unix", "-", "-", "n", "-", "-", "error"),
    ("retry", "unix", "-", "-", "n", "-", "-", "error"),
    ("discard", "unix", "-", "-", "n", "-", "-", "discard"),
    ("lmtp", "unix", "-", "-", "n", "-", "-", "lmtp"),
    ("anvil", "unix", "-", "-", "n", "-", "1", "anvil"),
    ("scache", "unix", "-", "-", "n", "-", "1", "scache"),
    ("postlog", "unix-dgram", "n", "-", "n", "-", "1", "postlogd"),
)


def _master_line(*columns: str) -> str:
    return " ".join(f"{col:<10}" for col in columns[:-1]) + " " + columns[-1]


def _smtpd(listen: str, syslog_name: str, options: tuple[str, ...]) -> list[str]:
    lines = [_master_line(listen, "inet", "n", "-", "n", "-", "-", "smtpd")]
    if syslog_name in SIGNING_LISTENERS:  # the sender policy first, then the signer
        options = (f"milter_macro_daemon_name=mailhost-{syslog_name}",
                   "smtpd_milters=$mailhost_sender_milters", *options)
    lines += [f"  -o {opt}" for opt in (f"syslog_name=postfix/{syslog_name}", *options)]
    return lines


def render_postfix_master_cf(cfg: NodeConfig) -> str:
    bind = _host_port(cfg.bind_address)
    lines = [
        f"# {HEADER}",
        _master_line("# service", "type", "private", "unpriv", "chroot", "wakeup", "maxproc",
                     "command + args"),
        "# Inbound mail for hosted domains (MX). No AUTH here.",
        *_smtpd(bind(cfg.ports["smtp"]), "smtp",
                ("smtpd_delay_reject=no", *smtp_inbound_options(cfg.inbound))),
        "# Client submission: STARTTLS required, then AUTH; send only as addresses you own.",
        *_smtpd(bind(cfg.ports["submission"]), "submission",
                ("smtpd_tls_security_level=encrypt", *_SUBMISSION_OPTIONS)),
        "# Client submission over implicit TLS.",
        *_smtpd(bind(cfg.ports["submissions"]), "submissions",
                ("smtpd_tls_wrappermode=yes", *_SUBMISSION_OPTIONS)),
        "# Loopback-only forwarding hop (mailhost/backend/forwarding.py): what aliases send",
        "# on to other domains comes back in here, to be ARC-sealed by Rspamd and to get an",
        "# SRS return path from its own cleanup.",
        *_smtpd(_host_port("127.0.0.1")(cfg.ports["forward"]), "forward", (
            f"milter_macro_daemon_name={FORWARD_DAEMON_NAME}",
            f"cleanup_service_name={FORWARD_CLEANUP}",
            "smtpd_client_restrictions=permit_mynetworks,reject",
            "smtpd_relay_restrictions=permit_mynetworks,reject",
            # Another node's domain leaves for that node (mailhost/backend/peers.py), matched
            # by exact domain: Postfix's default minus smtpd_access_maps.
            f"smtpd_recipient_restrictions=check_recipient_access,"
            f"texthash:{cfg.path(PEER_FILTER)},check_recipient_access,"
            f"{postfix_map(cfg, 'recipient-access')}",
            "parent_domain_matches_subdomains=debug_peer_list,fast_flush_domains,mynetworks,"
            "permit_mx_backup_networks,qmqpd_authorized_clients,relay_domains",
            # What comes in here this node accepted already. A domain moving away that it
            # still lists (nodes/moves.py) leaves by its FILTER line: checking it against the
            # mailboxes this node is dropping would bounce mail the new node holds.
            "smtpd_reject_unlisted_recipient=no",
        )),
        "# Loopback-only re-injection: Dovecot's Sieve redirect and vacation, local services.",
        *_smtpd(_host_port("127.0.0.1")(cfg.ports["internal"]), "internal", (
            "smtpd_client_restrictions=permit_mynetworks,reject",
            "smtpd_relay_restrictions=permit_mynetworks,reject",
        )),
    ]
    lines += [_master_line(*service) for service in _MASTER_SERVICES]
    lines += _forwarding_services(cfg)
    lines += [
        "# The report intake: virtual(8) writes each report message into one maildir.",
        _master_line(REPORT_TRANSPORT, "unix", "-", "n", "n", "-", "-", "virtual"),
        f"  -o virtual_mailbox_base={cfg.report_spool.parent}",
        f"  -o virtual_mailbox_maps=static:{cfg.report_spool.name}/",
        f"  -o virtual_uid_maps=static:{MAIL_UID}",
        f"  -o virtual_gid_maps=static:{MAIL_GID}",
        f"  -o virtual_minimum_uid={MAIL_UID}",
        "  -o virtual_mailbox_limit=0",  # message_size_limit already bounds each report
    ]
    return _lines(*lines)


def _forwarding_services(cfg: NodeConfig) -> list[str]:
    """The forwarding path's transport (to the forwarding listener, plain SMTP on loopback,
    whatever the outbound TLS or relay policy) and the cleanup that gives SRS addresses."""
    return [
        "# Forwarded mail to the forwarding listener (mailhost/backend/forwarding.py).",
        _master_line(FORWARD_TRANSPORT, "unix", "-", "-", "n", "-", "-", "smtp"),
        f"  -o syslog_name=postfix/{FORWARD_TRANSPORT}",
        "  -o smtp_tls_security_level=none",
        "  -o smtp_tls_policy_maps=",
        "  -o smtp_sasl_auth_enable=no",
        "# The forwarding listener's cleanup: SRS for senders not hosted here (postsrsd).",
        _master_line(FORWARD_CLEANUP, "unix", "n", "-", "n", "-", "0", "cleanup"),
        f"  -o syslog_name=postfix/{FORWARD_CLEANUP}",
        f"  -o sender_canonical_maps={postfix_map(cfg, 'srs-exempt')},"
        f"tcp:127.0.0.1:{cfg.ports['srs']}",
        "  -o sender_canonical_classes=envelope_sender",
    ]


def _host_port(address: str) -> Callable[[int], str]:
    host = f"[{address}]" if ":" in address else address
    return lambda port: f"{host}:{port}"


# --- Dovecot ---------------------------------------------------------------------------------

DOVECOT_SQL_PASSWORD_QUERY = (
    "SELECT address AS user, password FROM mailboxes WHERE address = '%u' AND can_login = 1"
)
# One row per slot: LIMIT 1 OFFSET n over a stable order (see DEFAULT_APP_PASSWORD_SLOTS).
DOVECOT_SQL_APP_PASSWORD_QUERY = (
    "SELECT a.address AS user, a.password FROM app_passwords a "
    "JOIN mailboxes m ON m.address = a.address "
    "WHERE a.address = '%u' AND m.can_login = 1 ORDER BY a.password LIMIT 1 OFFSET {slot}"
)


def app_password_passdb_path(slot: int) -> str:
    return f"dovecot/sql-app-passdb-{slot}.conf.ext"


def _dovecot_sql_common(cfg: NodeConfig) -> list[str]:
    return [
        f"# {HEADER}",
        "driver = sqlite",
        f"connect = {cfg.lookup_db}",
        "# Hashes carry their scheme: {BLF-CRYPT}$2b$… (chosen), {SSHA512}… (generated)",
        "default_pass_scheme = BLF-CRYPT",
    ]


def render_dovecot_sql_passdb(cfg: NodeConfig) -> str:
    return _lines(*_dovecot_sql_common(cfg), f"password_query = {DOVECOT_SQL_PASSWORD_QUERY}")


def render_dovecot_sql_app_passdb(cfg: NodeConfig, slot: int) -> str:
    query = DOVECOT_SQL_APP_PASSWORD_QUERY.format(slot=slot)
    return _lines(*_dovecot_sql_common(cfg), f"password_query = {query}")


def render_dovecot_sql_userdb(cfg: NodeConfig) -> str:
    mail = cfg.mail_root
    # `home` is a home id (a directory name below mail/); an absolute path is taken as is.
    home = f"CASE WHEN substr(home, 1, 1) = '/' THEN home ELSE '{mail}/' || home END"
    return _lines(
        *_dovecot_sql_common(cfg),
        "# Logins are gated by the passdbs (can_login), so a suspended mailbox still receives.",
        "# Delivery (service lmtp, %s) is gated by can_receive: that also stops mail reaching a",
        "# disabled mailbox through an alias, after Postfix's RCPT check.",
        # The state dir is checked to hold no quote (NodeConfig), so it is safe in a literal.
        f"user_query = SELECT {home} AS home, {MAIL_UID} AS uid, {MAIL_GID} AS gid, "  # noqa: S608
        "'*:bytes=' || quota_bytes AS quota_rule FROM mailboxes "
        "WHERE address = '%u' AND (can_receive = 1 OR '%s' <> 'lmtp')",
        "iterate_query = SELECT address AS user FROM mailboxes",
    )


def render_dovecot_sql_mailcrypt_userdb(cfg: NodeConfig) -> str:
    return _lines(
        f"# {HEADER}",
        "driver = sqlite",
        f"connect = {cfg.path(MAIL_CRYPT_DB)}",
        "# The organisation's mail_crypt keys by the login's domain (mailhost/backend/",
        "# mailcrypt.py); no row: no key, and new mail is stored plain.",
        f"user_query = {MAIL_CRYPT_USER_QUERY}",
        f"iterate_query = {MAIL_CRYPT_ITERATE_QUERY}",
    )


def _dovecot_userdbs(cfg: NodeConfig) -> list[str]:
    """The mailboxes' userdb decides whether a user exists (and may receive); the second only
    adds the encryption keys of the user's organisation, if it has any."""
    return [
        "userdb {",
        "  driver = sql",
        f"  args = {cfg.path('dovecot/sql-userdb.conf.ext')}",
        "  result_success = continue-ok",
        "  result_failure = return-fail",
        "  result_internalfail = return-fail",
        "}",
        "userdb {",
        "  driver = sql",
        f"  args = {cfg.path(MAIL_CRYPT_USERDB)}",
        "  # No key for the domain: the user found above stands, without encryption.",
        "  result_failure = return-ok",
        "  result_internalfail = return-fail",
        "}",
    ]


def _dovecot_passdbs(cfg: NodeConfig) -> list[str]:
    """The mailbox password first, then each app-password slot: a mismatch continues down the
    chain (result_failure = continue is the default), the first match logs in. Last, the
    application senders: SMTP AUTH only (their query matches the smtp service alone)."""
    lines = ["passdb {", "  driver = sql", f"  args = {cfg.path('dovecot/sql-passdb.conf.ext')}",
             "}"]
    if cfg.edge.webmail:
        lines += [
            "# Webmail's single sign-on (mailhost/backend/webmail.py): one master login, from",
            "# the node itself only, that logs in *as* a mailbox (SASL authzid); `pass = yes`",
            "# still looks that mailbox up in the passdbs above, so a suspended one is refused.",
            "passdb {", "  driver = passwd-file", "  master = yes",
            f"  args = {cfg.path(WEBMAIL_MASTER_USERS)}", "  pass = yes", "}",
        ]
    for slot in range(cfg.app_password_slots):
        lines += ["passdb {", "  driver = sql",
                  f"  args = {cfg.path(app_password_passdb_path(slot))}", "}"]
    lines += ["passdb {", "  driver = sql", f"  args = {cfg.path(APP_SENDERS_PASSDB)}", "}"]
    return lines


def render_dovecot_sql_app_senders(cfg: NodeConfig) -> str:
    return _lines(
        f"# {HEADER}",
        "driver = sqlite",
        f"connect = {cfg.path(SENDERS_DB)}",
        "default_pass_scheme = BLF-CRYPT",
        f"password_query = {SENDERS_DOVECOT_QUERY}",
    )


def _dovecot_auth_policy(cfg: NodeConfig) -> list[str]:
    return [
        "# Login protection: Dovecot asks the node's ban policy server before and after every",
        "# IMAP, ManageSieve and SMTP AUTH login and reports each result to it (see",
        "# mailhost/backend/banpolicy.py). If it is down, logins are allowed (reject_on_fail no).",
        f"auth_policy_server_url = http://127.0.0.1:{cfg.ports['authpolicy']}/",
        f"auth_policy_server_api_header = <{cfg.banpolicy_header_file}",
        "# Only the login, the client's address and the service are sent; no password hash.",
        "auth_policy_request_attributes = login=%{requested_username} remote=%{rip} protocol=%s",
        "auth_policy_hash_nonce = unused-no-password-hash-is-sent",
        "auth_policy_report_after_auth = yes",
        "auth_policy_reject_on_fail = no",
        "auth_policy_server_timeout_msecs = 2000",
    ]


def _dovecot_dev(cfg: NodeConfig) -> list[str]:
    if not cfg.dev:
        if not cfg.edge.webmail:
            return []
        nets = dict.fromkeys([*DEV_TRUSTED, _net(webmail_config(cfg).host)])
        return [
            "# Webmail (Roundcube, on this node) logs in on behalf of browsers and names the",
            "# browser's address before it authenticates (IMAP ID x-originating-ip): Dovecot takes",
            "# it from these addresses only, so bans and the login penalty hit the browser.",
            f"login_trusted_networks = {' '.join(nets)}",
        ]
    return [
        "# Dev/test stack (MAILHOST_STACK_DEV=true): one failed login would otherwise delay the",
        "# next good one by seconds. Production keeps the delay and the penalty. Dovecot cannot",
        "# limit these two to one address for SMTP AUTH, so they are off for every client here;",
        "# bans still apply to every address but 127.0.0.1 and ::1.",
        f"login_trusted_networks = {' '.join(DEV_TRUSTED)}",
        "auth_failure_delay = 0",
        "service anvil {",
        "  unix_listener anvil-auth-penalty {",
        "    mode = 0",
        "  }",
        "}",
    ]


def render_dovecot_conf(cfg: NodeConfig) -> str:
    s, p = cfg.state_dir, cfg.ports
    return _lines(
        f"# {HEADER}",
        "# Self-contained: nothing of the system-wide Dovecot configuration is included.",
        "# The state dir in Dovecot's process titles: `pgrep -f <state dir>` finds them.",
        f"instance_name = {s}",
        f"base_dir = {s}/run/dovecot",
        f"state_dir = {s}/lib/dovecot",
        f"log_path = {s}/log/dovecot.log",
        "protocols = imap lmtp sieve",
        f"listen = {cfg.bind_address}",
        f"hostname = {cfg.hostname}",
        f"postmaster_address = postmaster@{cfg.hostname}",
        "",
        "ssl = yes",
        f"ssl_cert = <{s}/tls/cert.pem",
        f"ssl_key = <{s}/tls/key.pem",
        "ssl_min_protocol = TLSv1.2",
        "ssl_prefer_server_ciphers = yes",
        "",
        "disable_plaintext_auth = yes",
        "auth_mechanisms = plain login",
        "auth_username_format = %Lu",
        "# The characters of a hosted login, as mailhost.names.HOSTED_LOCAL_PART allows them",
        "# (Dovecot's default, stated so the two cannot drift apart). '+' is not one: Postfix",
        "# cuts it off as the tag delimiter before delivery.",
        "auth_username_chars = "
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ01234567890.-_@",
        "# Lookups hit the SQLite store directly; a cache would need flushing on every change.",
        "auth_cache_size = 0",
        "auth_verbose = yes",
        *_dovecot_passdbs(cfg),
        *_dovecot_userdbs(cfg),
        *_dovecot_auth_policy(cfg),
        *_dovecot_dev(cfg),
        "",
        f"first_valid_uid = {MAIL_UID}",
        f"last_valid_uid = {MAIL_UID}",
        f"first_valid_gid = {MAIL_GID}",
        f"last_valid_gid = {MAIL_GID}",
        "mail_location = maildir:~/Maildir",
        "# mail_crypt for everyone: it encrypts only for users the userdb gives a key and",
        "# save_version 2 (mailhost/backend/mailcrypt.py), and decrypts whatever is encrypted.",
        "mail_plugins = quota mail_crypt",
        *_dovecot_namespace(),
        "",
        *_dovecot_services(cfg, p),
        "",
        "protocol imap {",
        "  mail_plugins = $mail_plugins imap_quota imap_sieve",
        "}",
        "protocol lmtp {",
        "  mail_plugins = $mail_plugins sieve",
        "}",
        "# Over-quota mail is refused at RCPT (552), not accepted and bounced later.",
        "lmtp_rcpt_check_quota = yes",
        "# Sieve redirect and vacation replies go back through Postfix's loopback-only listener.",
        f"submission_host = 127.0.0.1:{p['internal']}",
        "",
        "plugin {",
        "  quota = count:User quota",
        "  quota_vsizes = yes",
        "  # Per user from the userdb (quota_rule = *:bytes=N); 0 means no limit.",
        "  quota_rule = *:bytes=0",
        "  # Plain unless the userdb says otherwise (an organisation that encrypts at rest).",
        "  mail_crypt_save_version = 0",
        "  # The user's own scripts (ManageSieve): the reconciler never writes here.",
        f"  sieve = file:~/sieve;active=~/{LEGACY_ACTIVE_SCRIPT}",
        "  # Scripts that run around the user's own, from files the reconciler owns. First the",
        "  # global spam filing (mailhost/backend/inbound.py: spam goes to Junk before anything",
        "  # forwards or auto-replies to it), then the mailbox's portal features: forwarding and",
        "  # vacation (mailhost/backend/sieve.py). A missing per-user file is skipped; the",
        "  # numbers must have no gap (Pigeonhole stops reading at the first one).",
        f"  sieve_before = {cfg.state_dir}/{SPAM_SIEVE}",
        f"  sieve_before2 = ~/{BEFORE_SCRIPT}",
        f"  sieve_after = ~/{AFTER_SCRIPT}",
        "  # Forwarded mail leaves with our recipient as envelope sender (SPF keeps passing).",
        "  sieve_redirect_envelope_from = recipient",
        "  # Vacation replies and notifications too: the envelope sender is then the identity",
        "  # the sender-policy milter holds their From: to (a script's `vacation :from` or",
        "  # `notify :from` cannot claim another tenant's address). Pigeonhole's default, <>,",
        "  # would leave the signer nothing but the header to go by.",
        "  sieve_vacation_send_from_recipient = yes",
        "  sieve_notify_mailto_envelope_from = recipient",
        "}",
        *dovecot_inbound_lines(cfg.state_dir),
    )


def _dovecot_namespace() -> list[str]:
    lines = ["namespace inbox {", "  inbox = yes", "  separator = /"]
    for name, use in (("Drafts", "\\Drafts"), ("Junk", "\\Junk"), ("Sent", "\\Sent"),
                      ("Trash", "\\Trash")):
        lines += [f"  mailbox {name} {{", "    auto = subscribe", f"    special_use = {use}",
                  "  }"]
    return [*lines, "}"]


def _dovecot_services(cfg: NodeConfig, p: Mapping[str, int]) -> list[str]:
    return [
        "service imap-login {",
        "  inet_listener imap {",
        f"    port = {p['imap']}",
        "  }",
        "  inet_listener imaps {",
        f"    port = {p['imaps']}",
        "    ssl = yes",
        "  }",
        "}",
        "service managesieve-login {",
        "  inet_listener sieve {",
        f"    port = {p['managesieve']}",
        "  }",
        "}",
        "service lmtp {",
        "  unix_listener lmtp {",
        "    user = postfix",
        "    group = postfix",
        "    mode = 0600",
        "  }",
        "}",
        "service auth {",
        "  # Postfix's SMTP AUTH asks Dovecot.",
        "  unix_listener auth-postfix {",
        "    user = postfix",
        "    group = postfix",
        "    mode = 0600",
        "  }",
        "  unix_listener auth-userdb {",
        "    mode = 0600",
        "  }",
        "  # Radicale (CalDAV/CardDAV, mailhost/backend/dav.py) checks logins here: a client",
        "  # socket, so the auth policy (bans) and the failure delay apply as for IMAP.",
        f"  unix_listener {DOVECOT_AUTH_SOCKET.rsplit('/', 1)[1]} {{",
        "    mode = 0600",
        "  }",
        "}",
        "# Dovecot's own counters in the OpenMetrics format, on loopback only (GET /metrics):",
        "# logins, IMAP commands and LMTP deliveries by outcome.",
        "service stats {",
        "  inet_listener http {",
        "    address = 127.0.0.1",
        f"    port = {p['stats']}",
        "  }",
        "}",
        *_dovecot_doveadm(cfg, p),
        "metric auth_success {",
        "  filter = event=auth_request_finished AND success=yes",
        "}",
        "metric auth_failure {",
        "  filter = event=auth_request_finished AND NOT success=yes",
        "}",
        "metric imap_command {",
        "  filter = event=imap_command_finished",
        "  group_by = cmd_name tagged_reply_state",
        "}",
        "metric mail_delivery {",
        "  filter = event=mail_delivery_finished",
        "}",
    ]


def _dovecot_doveadm(cfg: NodeConfig, p: Mapping[str, int]) -> list[str]:
    """The doveadm server another node's `doveadm sync` talks to when a domain moves between
    nodes (nodes/moves: the target pulls each mailbox from the source). doveadm_port and the
    password are also what this node's own doveadm uses as the client. Without a password,
    no listener: doveadm over TCP refuses everyone then anyway."""
    if not cfg.doveadm_password:
        return []
    return [
        "# Mail between nodes (a domain moving): `doveadm sync` over TCP, password required.",
        "service doveadm {",
        "  inet_listener {",
        f"    address = {cfg.doveadm_bind_address or cfg.bind_address}",
        f"    port = {p['doveadm']}",
        "  }",
        "}",
        f"doveadm_port = {p['doveadm']}",
        f"doveadm_password = <{cfg.path(DOVEADM_PASSWORD_FILE)}",
    ]


# --- sender-policy milter -------------------------------------------------------------------


def render_sender_policy_json(cfg: NodeConfig) -> str:
    """mailhost.backend.milter's config: where to listen, who may connect, what to read."""
    return json.dumps(
        {
            "lookup_db": str(cfg.lookup_db),
            "pid_file": str(cfg.path("run/sender-policy/sender-policy.pid")),
            "socket": str(cfg.path(SENDER_POLICY_SOCKET)),
            "socket_group": "postfix",
            "quotas_db": str(cfg.path(QUOTAS_DB)),
            "senders_db": str(cfg.path(SENDERS_DB)),
            "suppressions_db": str(cfg.path(SUPPRESSIONS_DB)),
        },
        indent=2,
        sort_keys=True,
    ) + "\n"


# --- event agent ----------------------------------------------------------------------------


def render_event_agent_json(cfg: NodeConfig) -> str:
    """mailhost.backend.events' config: the log it follows, its store, the bounce socket."""
    return json.dumps(
        {
            # Postfix's minimal and maximal backoff (main.cf): a deferral's next attempt.
            "backoff_seconds": list(TEST_BACKOFF if cfg.internet_mx else POSTFIX_BACKOFF),
            "bounce_socket": str(cfg.path(BOUNCE_SOCKET)),
            "events_db": str(cfg.path(EVENTS_DB)),
            "hostname": cfg.hostname,
            "interval_seconds": 0.2,
            "maillog": str(cfg.path("log/postfix.log")),
            "mtasts_socket": str(cfg.path(MTASTS_SOCKET))
            if cfg.outbound_tls.mta_sts_enforce else "",
            "pid_file": str(cfg.path("run/event-agent/event-agent.pid")),
            "queue_dir": str(cfg.path("spool")),
            "quotas_db": str(cfg.path(QUOTAS_DB)),
            "socket_group": "postfix",
            "tls_default_level": cfg.outbound_tls.default_level,
            "tls_policy_map": str(cfg.path(POLICY_MAP)),
        },
        indent=2,
        sort_keys=True,
    ) + "\n"


def render_certwatch_json(cfg: NodeConfig) -> str:
    """mailhost.backend.certwatch's config: which certificates, who reads them, how to reload."""
    s = cfg.state_dir
    return json.dumps(
        {
            "state_dir": str(s),
            "pid_file": str(cfg.path("run/cert-watch/cert-watch.pid")),
            "interval_seconds": cfg.cert_watch_seconds,
            "watch": [
                {"cert": NODE_CERT, "key": "key.pem", "daemons": ["dovecot", "edge", "postfix"]},
                {"cert": f"{ACME_LIVE}/*/cert.pem", "key": "key.pem", "daemons": ["edge"]},
            ],
            "commands": {
                "postfix": ["postfix", "-c", f"{s}/postfix", "reload"],
                "dovecot": ["doveadm", "-c", f"{s}/dovecot/dovecot.conf", "reload"],
                "edge": ["nginx", "-e", f"{s}/log/edge.log", "-c", f"{s}/{EDGE_CONF}", "-s",
                         "reload"],
            },
        },
        indent=2,
        sort_keys=True,
    ) + "\n"


# --- ban policy server ----------------------------------------------------------------------


def render_banpolicy_json(cfg: NodeConfig) -> str:
    return policy_json(
        store=cfg.bans_db,
        listen=("127.0.0.1", cfg.ports["authpolicy"]),
        key_file=cfg.banpolicy_header_file,
        pid_file=cfg.path("run/banpolicy/banpolicy.pid"),
        policy=cfg.ban_policy,
    )


# --- OpenDKIM --------------------------------------------------------------------------------


def render_opendkim_conf(cfg: NodeConfig) -> str:
    s = cfg.state_dir
    return _lines(
        f"# {HEADER}",
        "# The reconciler writes KeyTable, SigningTable and keys/, then sends SIGUSR1.",
        f"UserID                  {OPENDKIM_USER}:{OPENDKIM_USER}",
        "# run/opendkim is opendkim:postfix, mode 2750: only OpenDKIM and Postfix reach the",
        "# socket, which UMask 007 makes group-connectable.",
        "UMask                   007",
        f"Socket                  local:{s}/run/opendkim/opendkim.sock",
        f"PidFile                 {s}/run/opendkim/opendkim.pid",
        "Background              yes",
        "AutoRestart             no",
        "Mode                    sv",
        "Canonicalization        relaxed/simple",
        "SignatureAlgorithm      rsa-sha256",
        "OversignHeaders         From",
        f"KeyTable                {cfg.opendkim_key_table}",
        # A plain table keyed by domain (OpenDKIM looks up user@host, then host): a refile:
        # table runs one pattern per hosted domain on every message, -13% at 1,000 domains.
        f"SigningTable            file:{cfg.opendkim_signing_table}",
        "# Choose the key by the envelope sender, which Postfix has already checked against the",
        "# SASL login (sender login maps), never by the From: header a client can forge: else",
        "# a user of one tenant could get mail signed with another tenant's domain key.",
        "SenderMacro             {mail_addr}",
        "# With the sender macro empty (null envelope sender) OpenDKIM falls back to the From:",
        "# field alone, which the sender-policy milter has verified on every signing listener.",
        "SenderHeaders           From",
        "# Sign only for the submission and internal listeners (their daemon names) and for",
        "# authenticated clients; no host is internal by address, so a loopback client of the",
        "# port-25 listener gets verified, never signed.",
        f"MTA                     {','.join(f'mailhost-{n}' for n in SIGNING_LISTENERS)}",
        f"InternalHosts           {s}/opendkim/InternalHosts",
        f"ExternalIgnoreList      {s}/opendkim/TrustedHosts",
        f"RequireSafeKeys         {'true' if cfg.dkim_require_safe_keys else 'false'}",
        "# OpenDKIM logs only to syslog, which this host may not run. Its failures still surface",
        "# as 451 4.7.1 milter rejects in postfix.log (milter_default_action = tempfail).",
        "Syslog                  yes",
        "LogWhy                  yes",
        "DNSTimeout              5",
    )


def render_opendkim_trusted_hosts(cfg: NodeConfig) -> str:
    return _lines("127.0.0.1", "::1", "localhost")


def render_opendkim_internal_hosts(cfg: NodeConfig) -> str:
    """Empty on purpose: without this file OpenDKIM treats 127.0.0.1 as internal and signs
    whatever a loopback client hands the port-25 listener (see MTA in opendkim.conf)."""
    return _lines("# No host is internal by address; signing follows the listener (MTA).")


def node_environment(cfg: NodeConfig, node_name: str) -> dict[str, str]:
    """What a node's worker reads its own NodeConfig from, for `cfg`: its name, state dir, host
    name, ports, the portal port its edge proxies to and (test harness) the internet MX. Two
    nodes on one machine (the multi-node tests, `make bench` B10) start the second node's
    worker with these on top of the portal's environment."""
    env = {
        "MAILHOST_NODE_NAME": node_name,
        "MAILHOST_NODE_STATE_DIR": str(cfg.state_dir),
        "MAILHOST_HOSTNAME": cfg.hostname,
        "MAILHOST_TEST_INTERNET_MX": cfg.internet_mx,
    }
    if cfg.edge.upstream:
        env["MAILHOST_WEB_PORT"] = cfg.edge.upstream.rsplit(":", 1)[1]
    return env | {PORT_ENV[name]: str(port) for name, port in cfg.ports.items()}
