"""Inbound filtering on a node: Rspamd, the node's unbound resolver, spam filing and learning.

Pure renderers, like mailhost.backend.config: `NodeConfig` (and, for the per-domain parts,
frozen policy snapshots) in, file contents out; no I/O, no clock, sorted output, golden-tested.

What runs where (every path relative to the node's state directory):

  rspamd/rspamd.conf, rspamd/local.d/*      Rspamd's private tree (LOCAL_CONFDIR = rspamd/);
                                            the stock rules from /etc/rspamd (CONFDIR)
  rspamd/rspamd.local.lua                   registers the symbols of our settings map
  rspamd/db/                                Rspamd's own state (DBDIR), _rspamd
  <hs cache>                                Rspamd's compiled regex cache (hs_cache_dir): kept
                                            outside db/ so test stacks and re-created nodes
                                            reuse it (a cold compile takes ~20 s)
  run/rspamd/milter.sock                    the milter Postfix's port-25 listener calls
  run/rspamd/controller.sock                rspamc learn/stat (Dovecot's learning pipes)
  inbound/settings.conf                     per-domain policy: Rspamd settings map, reloaded
                                            by Rspamd without a restart (map_watch_interval)
  inbound/greylist-bypass.map               the circuit breaker: every address when open
  inbound/guard.json, inbound/status.json   the inbound guard's config and what it last saw
  inbound/flow.sqlite                       mail-flow counters per day, domain and outcome
  unbound/unbound.conf, unbound/hosted.conf the resolver; hosted.conf: the hosted domains'
                                            records (local mode), zones/*.conf: test fixtures
  sieve/global/spam.sieve                   files Rspamd's "add header" into Junk (sieve_before)
  sieve/global/learn-{spam,ham}.sieve       IMAPSieve: moving into / out of Junk trains Rspamd
  sieve/bin/rspamd-learn-{spam,ham}         the pipe programs those scripts call

Rspamd runs only on the MX listener (port 25). Submission is authenticated and held to the
login's addresses by the sender-policy milter, so it is never greylisted or spam-scored.
"""

import ipaddress
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import unquote, urlparse

HEADER = "Managed by Mailhost (mailhost/backend/inbound.py); local edits are overwritten."

RSPAMD_USER = "_rspamd"
UNBOUND_USER = "unbound"
RSPAMD_MILTER_SOCKET = "run/rspamd/milter.sock"
RSPAMD_CONTROLLER_SOCKET = "run/rspamd/controller.sock"
RSPAMD_PID = "run/rspamd/rspamd.pid"
UNBOUND_PID = "run/unbound/unbound.pid"
SETTINGS_MAP = "inbound/settings.conf"
GREYLIST_BYPASS_MAP = "inbound/greylist-bypass.map"
GUARD_CONFIG = "inbound/guard.json"
GUARD_STATUS = "inbound/status.json"
FLOW_DB = "inbound/flow.sqlite"
HOSTED_ZONE_FILE = "unbound/hosted.conf"
FIXTURE_ZONES_DIR = "unbound/zones"
SPAM_SIEVE = "sieve/global/spam.sieve"
LEARN_SPAM_SIEVE = "sieve/global/learn-spam.sieve"
LEARN_HAM_SIEVE = "sieve/global/learn-ham.sieve"
SIEVE_BIN_DIR = "sieve/bin"
JUNK = "Junk"
SPAM_HEADER = "X-Spam"
# Rspamd's stock rules live here (Debian's rspamd package); only our overrides are rendered.
RSPAMD_CONFDIR = "/etc/rspamd"
ROOT_TRUST_ANCHOR = "/usr/share/dns/root.key"  # Debian's dns-root-data

# Symbols our settings map adds to a message, and what force_actions does with them.
REQUIRE_SYMBOLS = {
    "spf": ("MH_REQUIRE_SPF", "R_SPF_ALLOW", "SPF pass"),
    "dkim": ("MH_REQUIRE_DKIM", "R_DKIM_ALLOW", "DKIM pass"),
    "dmarc": ("MH_REQUIRE_DMARC", "DMARC_POLICY_ALLOW", "DMARC pass"),
}
BLOCK_SYMBOL = "MH_SENDER_BLOCKED"
ALLOW_SYMBOL = "MH_SENDER_ALLOWED"
ALLOW_SCORE = -50.0  # an allow-listed sender is never junked by score alone

_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_DOMAIN = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*$")
_LOCAL = re.compile(r"^[a-z0-9!#$%&*+=?^_`{|}~.-]{1,64}$")


class UnsafeInboundValue(ValueError):
    """A value that must never reach Rspamd's or unbound's configuration."""


@dataclass(frozen=True)
class RedisTarget:
    host: str = ""
    port: int = 6379
    db: int = 0
    password: str = ""

    @classmethod
    def from_url(cls, url: str) -> "RedisTarget":
        """`redis://[:password@]host:port/db`; empty: Rspamd runs without Redis."""
        if not url:
            return cls()
        parsed = urlparse(url)
        if parsed.scheme not in ("redis", "") or not parsed.hostname:
            raise ValueError(f"Rspamd's Redis must be redis://host:port/db, got {url!r}")
        db = parsed.path.strip("/") or "0"
        return cls(parsed.hostname, parsed.port or 6379, int(db), unquote(parsed.password or ""))


@dataclass(frozen=True)
class InboundConfig:
    """The node-wide inbound settings (MAILHOST_INBOUND_*, MAILHOST_GREYLIST_*, …)."""

    # local: the resolver answers only for the hosted domains and fixture zones (development,
    # tests, an offline box); recursive: it resolves the internet (production).
    resolver_mode: str = "recursive"
    resolver_upstreams: tuple[str, ...] = ()  # empty: full recursion from the root
    redis: RedisTarget = RedisTarget()
    junk_score: float = 6.0
    reject_score: float = 15.0
    # Every message below the junk score from an unknown (sender, recipient, /19) is deferred
    # once: classic greylisting. Raise it (e.g. to 0) to greylist only doubtful mail.
    greylist_score: float = -100.0
    greylist_delay_seconds: int = 300
    greylist_expire_seconds: int = 86400
    breaker_deferred_threshold: int = 500
    breaker_interval_seconds: int = 10
    # Postfix on port 25: per client address (anvil), per message.
    connection_rate_limit: int = 60  # connections per minute
    message_rate_limit: int = 120  # MAIL FROM per minute
    max_recipients: int = 100
    # Loopback clients allowed to present another client address with XCLIENT (the test
    # harness and the benchmark: a loopback client counts as local to Rspamd and is not
    # checked). Empty in production.
    xclient_hosts: tuple[str, ...] = ()
    # Rspamd's compiled regex cache; None: <state>/rspamd/hs.
    hs_cache_dir: Path | None = None
    map_watch_seconds: int = 2
    # Retention in Rspamd's Redis: rows of scan history the controller keeps (its history
    # module's `nrows`), and how long Bayes tokens live unless learned again (0: for ever).
    history_rows: int = 200
    bayes_expire_days: int = 100

    def __post_init__(self) -> None:
        if self.resolver_mode not in ("local", "recursive"):
            raise ValueError(f"resolver_mode is local or recursive, got {self.resolver_mode!r}")
        for upstream in self.resolver_upstreams:
            _upstream(upstream)
        for host in self.xclient_hosts:
            ipaddress.ip_network(host)
        if not 0 < self.junk_score < self.reject_score:
            raise ValueError("junk_score must be > 0 and below reject_score")
        if self.greylist_score >= self.junk_score:
            raise ValueError("greylist_score must be below junk_score")
        numbers = (self.greylist_delay_seconds, self.greylist_expire_seconds,
                   self.breaker_deferred_threshold, self.breaker_interval_seconds,
                   self.connection_rate_limit, self.message_rate_limit, self.max_recipients,
                   self.map_watch_seconds, self.history_rows)
        if any(not isinstance(n, int) or n < 1 for n in numbers):
            raise ValueError("inbound limits, delays and thresholds must be whole numbers ≥ 1")
        if not isinstance(self.bayes_expire_days, int) or self.bayes_expire_days < 0:
            raise ValueError("bayes_expire_days must be a whole number ≥ 0 (0: never)")


def _upstream(value: str) -> tuple[str, int]:
    """`ip` or `ip@port` (unbound's forward-addr form)."""
    address, _, port = value.partition("@")
    ipaddress.ip_address(address)
    number = int(port or 53)
    if not 1 <= number <= 65535:
        raise ValueError(f"bad upstream port in {value!r}")
    return address, number


# --- per-domain policy ------------------------------------------------------------------------


@dataclass(frozen=True)
class SenderRule:
    """An allow or block entry: `sender` is an address or `@domain`; `mailbox` limits it to one
    hosted address (else the whole domain)."""

    kind: str  # allow | block
    sender: str
    mailbox: str = ""


@dataclass(frozen=True)
class InboundPolicySnap:
    domain: str
    require_spf: bool = False
    require_dkim: bool = False
    require_dmarc: bool = False
    greylisting: bool = True
    junk_score: float | None = None  # None: the node's default
    reject_score: float | None = None
    rules: tuple[SenderRule, ...] = field(default_factory=tuple)

    @property
    def is_default(self) -> bool:
        return self == InboundPolicySnap(self.domain)


def _domain(value: str) -> str:
    if not isinstance(value, str) or not _DOMAIN.match(value):
        raise UnsafeInboundValue(f"refusing to render domain {value!r}")
    return value


def _sender(value: str) -> str:
    local, at, domain = value.rpartition("@")
    if not at or (local and not _LOCAL.match(local)) or ".." in local:
        raise UnsafeInboundValue(f"refusing to render sender {value!r}")
    _domain(domain)
    return value


def _ucl(value: str) -> str:
    """A UCL double-quoted string of a value already held to an allow-list."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _score(value: float) -> str:
    return f"{float(value):.2f}"


def render_settings_map(cfg_inbound: InboundConfig, policies: Iterable[InboundPolicySnap]) -> str:
    """Rspamd's settings map: one rule per (domain | mailbox) × (allow | block | none).

    Rspamd applies only the highest-priority rule that matches a message, so every rule carries
    its domain's whole policy; sender rules outrank the domain rule, a mailbox's outrank its
    domain's. A message to several domains gets one rule (the first match): Postfix accepts it
    once, so it is scored once.
    """
    lines = [f"# {HEADER}"]
    for policy in sorted(policies, key=lambda p: p.domain):
        domain = _domain(policy.domain)
        if policy.is_default:
            continue
        apply = _apply_block(cfg_inbound, policy)
        # An allowed sender is never greylisted; its symbol's score keeps it out of Junk.
        allowed = [*_apply_block(cfg_inbound, replace(policy, greylisting=False)),
                   f"    {ALLOW_SYMBOL} = {_score(ALLOW_SCORE)};"]
        symbols = [REQUIRE_SYMBOLS[k][0] for k in ("spf", "dkim", "dmarc")
                   if getattr(policy, f"require_{k}")]
        for index, rule in enumerate(sorted(policy.rules, key=lambda r: (r.mailbox, r.kind,
                                                                          r.sender))):
            rcpt = _sender(rule.mailbox) if rule.mailbox else f"@{domain}"
            if rule.mailbox and not rule.mailbox.endswith(f"@{domain}"):
                raise UnsafeInboundValue(f"{rule.mailbox!r} is not an address of {domain}")
            if rule.kind not in ("allow", "block"):
                raise UnsafeInboundValue(f"rule kind {rule.kind!r}")
            extra = [BLOCK_SYMBOL] if rule.kind == "block" else [ALLOW_SYMBOL]
            lines += _rule(f"{domain}-{index}", 30 if rule.mailbox else 20, rcpt,
                           _sender(rule.sender), allowed if rule.kind == "allow" else apply,
                           symbols + extra)
        lines += _rule(f"{domain}", 10, f"@{domain}", None, apply, symbols)
    return "\n".join(lines) + "\n"


def _apply_block(cfg: InboundConfig, policy: InboundPolicySnap) -> list[str]:
    reject = policy.reject_score if policy.reject_score is not None else cfg.reject_score
    junk = policy.junk_score if policy.junk_score is not None else cfg.junk_score
    actions = [f"reject = {_score(reject)};", f'"add header" = {_score(junk)};']
    if policy.greylisting:
        actions.append(f"greylist = {_score(min(cfg.greylist_score, junk - 0.01))};")
    else:
        actions.append("greylist = null;")
    lines = ["    actions {", *(f"      {a}" for a in actions), "    }"]
    if not policy.greylisting:
        lines.append('    symbols_disabled = ["GREYLIST_CHECK", "GREYLIST_SAVE"];')
    return lines


def _rule(name: str, priority: int, rcpt: str, sender: str | None, apply: list[str],
          symbols: list[str]) -> list[str]:
    lines = [f"{_ucl(name)} {{", f"  priority = {priority};", f"  rcpt = {_ucl(rcpt)};"]
    if sender is not None:
        lines.append(f"  from = {_ucl(sender)};")
    lines += ["  apply {", *apply, "  }"]
    if symbols:
        lines.append("  symbols = [" + ", ".join(_ucl(s) for s in symbols) + "];")
    return [*lines, "}"]


# --- Rspamd: static files ---------------------------------------------------------------------


def rspamd_hs_cache(state_dir: Path, cfg: InboundConfig) -> Path:
    return cfg.hs_cache_dir or Path(state_dir) / "rspamd" / "hs"


def render_rspamd_conf(state_dir: Path) -> str:
    s = Path(state_dir)
    milter = f"{s}/{RSPAMD_MILTER_SOCKET} mode=0660 owner={RSPAMD_USER} group=postfix"
    controller = f"{s}/{RSPAMD_CONTROLLER_SOCKET} mode=0660 owner={RSPAMD_USER} group=mail"
    return _lines(
        f"# {HEADER}",
        "# Debian's rspamd.conf with our own sockets: the stock rules come from $CONFDIR, our",
        "# overrides from $LOCAL_CONFDIR (this directory). No normal worker and no fuzzy",
        "# storage: the milter proxy scans itself (self_scan).",
        '.include "$CONFDIR/common.conf"',
        "options {",
        '    pidfile = "$RUNDIR/rspamd.pid";',
        '    .include "$CONFDIR/options.inc"',
        '    .include(try=true; priority=1,duplicate=merge) "$LOCAL_CONFDIR/local.d/options.inc"',
        "}",
        "logging {",
        '    type = "file";',
        '    filename = "$LOGDIR/rspamd.log";',
        '    .include "$CONFDIR/logging.inc"',
        '    .include(try=true; priority=1,duplicate=merge) "$LOCAL_CONFDIR/local.d/logging.inc"',
        "}",
        'worker "controller" {',
        f"    bind_socket = {_ucl(controller)};",
        '    .include "$CONFDIR/worker-controller.inc"',
        '    .include(try=true; priority=1,duplicate=merge) '
        '"$LOCAL_CONFDIR/local.d/worker-controller.inc"',
        "}",
        'worker "rspamd_proxy" {',
        f"    bind_socket = {_ucl(milter)};",
        '    .include "$CONFDIR/worker-proxy.inc"',
        '    .include(try=true; priority=1,duplicate=merge) '
        '"$LOCAL_CONFDIR/local.d/worker-proxy.inc"',
        "}",
    )


def render_rspamd_local(state_dir: Path, hostname: str, resolver_port: int,
                        cfg: InboundConfig) -> dict[str, str]:
    """{path below rspamd/local.d/ (or rspamd/): content}."""
    s = Path(state_dir)
    files = {
        "local.d/options.inc": _lines(
            f"# {HEADER}",
            "# Our own resolver only (unbound, validating); blocklist lookups go through it.",
            f'dns {{ nameserver = ["127.0.0.1:{resolver_port}"]; timeout = 1s; '
            "retransmits = 2; }",
            'local_addrs = ["127.0.0.0/8", "::1"];',
            f'control_socket = "{s}/run/rspamd/control.sock mode=0600";',
            f'hs_cache_dir = "{rspamd_hs_cache(s, cfg)}/";',
            f"map_watch_interval = {cfg.map_watch_seconds}s;",
            "map_file_watch_multiplier = 1.0;",
            "# Offline fuzzy hashes need a public server; its config check would fail here.",
            'filters = "chartable,dkim,regexp";',
        ),
        "local.d/worker-proxy.inc": _lines(
            f"# {HEADER}",
            "milter = yes;",
            "timeout = 120s;",
            'upstream "local" { default = yes; self_scan = yes; }',
            "count = 1;",
            f'spam_header = "{SPAM_HEADER}";',
            'reject_message = "Message refused as spam by the receiving domain";',
        ),
        "local.d/worker-controller.inc": _lines(
            f"# {HEADER}",
            "# Reached only through its unix socket (rspamd:mail, 0660): Dovecot's learning",
            "# pipes run as mail. No password on a socket others cannot open.",
            'password = "";',
            'enable_password = "";',
        ),
        "local.d/logging.inc": _lines(f"# {HEADER}", 'level = "notice";'),
        "local.d/actions.conf": _lines(
            f"# {HEADER}",
            f"reject = {_score(cfg.reject_score)};",
            f"add_header = {_score(cfg.junk_score)};",
            f"greylist = {_score(cfg.greylist_score)};",
        ),
        "local.d/dmarc.conf": _lines(
            f"# {HEADER}",
            "# Enforce what the sender's domain asks: reject → 550 at SMTP, quarantine → the",
            "# spam header, which the global Sieve script files into Junk.",
            'actions { reject = "reject"; quarantine = "add header"; }',
            "reporting { enabled = false; }",
        ),
        "local.d/greylist.conf": _lines(
            f"# {HEADER}",
            f"timeout = {cfg.greylist_delay_seconds};",
            f"expire = {cfg.greylist_expire_seconds};",
            f"greylist_min_score = {_score(cfg.greylist_score)};",
            'message = "Greylisted, please try again later";',
            "# The circuit breaker: the inbound guard writes every address here while DNS",
            "# fails or the deferred queue is too long, so greylisting fails open.",
            f'whitelisted_ip = "file://{s}/{GREYLIST_BYPASS_MAP}";',
        ),
        "local.d/milter_headers.conf": _lines(
            f"# {HEADER}",
            "# Authentication-Results with our authserv-id (Postfix's {daemon_name}, the mail",
            "# host name); remove = 0 strips every incoming one first, so none claiming our",
            "# name can survive.",
            'use = ["authentication-results", "x-spam-status"];',
            'routines { authentication-results { header = "Authentication-Results"; remove = 0; }',
            '  x-spam-status { header = "X-Spam-Status"; remove = 0; } }',
            "skip_local = false;",
            "skip_authenticated = true;",
        ),
        "local.d/dkim_signing.conf": _lines(f"# {HEADER}", "# OpenDKIM signs.", "enabled = false;"),
        # local.d/arc.conf: the reconciler's (mailhost/backend/forwarding.py): ARC verifies on
        # every listener and seals forwarded mail only.
        "local.d/force_actions.conf": _render_force_actions(),
        "rspamd.local.lua": _render_local_lua(),
        "rspamd.conf.local.override": _lines(
            f"# {HEADER}",
            "# Per-domain inbound policy, rendered by the reconciler; reloaded without restart.",
            f'settings = "file://{s}/{SETTINGS_MAP}";',
        ),
    }
    if cfg.redis.host:
        redis = [f'servers = "{cfg.redis.host}:{cfg.redis.port}";', f'db = "{cfg.redis.db}";']
        if cfg.redis.password:
            redis.append(f"password = {_ucl(cfg.redis.password)};")
        files["local.d/redis.conf"] = _lines(
            f"# {HEADER}",
            "# Greylisting, rate limits and Bayes keep their state here; without Redis they are",
            "# off and scanning goes on.",
            *redis,
        )
        files["local.d/history_redis.conf"] = _lines(
            f"# {HEADER}",
            "# Scan history (the controller's /history): the newest rows only",
            "# (MAILHOST_RSPAMD_HISTORY_ROWS); older ones are trimmed at each scan.",
            f"nrows = {cfg.history_rows};",
        )
        files["local.d/classifier-bayes.conf"] = _lines(
            f"# {HEADER}",
            "# Rspamd's bayes_expiry module gives significant Bayes tokens this lifetime from",
            "# their last learn (MAILHOST_RSPAMD_BAYES_EXPIRE_DAYS; -1: they never expire).",
            f"expire = {cfg.bayes_expire_days * 86400 if cfg.bayes_expire_days else -1};",
        )
    del hostname  # the authserv-id comes from Postfix's {daemon_name}
    return dict(sorted(files.items()))


def _render_force_actions() -> str:
    rules = []
    for key, (symbol, passed, what) in sorted(REQUIRE_SYMBOLS.items()):
        rules += [
            f"  MH_REQUIRE_{key.upper()} {{",
            '    action = "reject";',
            f'    expression = "{symbol} & !{passed}";',
            f'    message = "The receiving domain accepts only mail with {what}";',
            "  }",
        ]
    rules += [
        "  MH_SENDER_BLOCKED {",
        '    action = "reject";',
        f'    expression = "{BLOCK_SYMBOL}";',
        '    message = "The recipient does not accept mail from this sender";',
        "  }",
    ]
    return _lines(f"# {HEADER}", "rules {", *rules, "}")


def _render_local_lua() -> str:
    """Registers the symbols our settings map inserts: force_actions depends on them."""
    return "\n".join([
        f"-- {HEADER}",
        "-- The symbols our settings map inserts (force_actions depends on them).",
        "for _, name in ipairs({" + ", ".join(
            f"'{n}'" for n in sorted([*(v[0] for v in REQUIRE_SYMBOLS.values()),
                                      BLOCK_SYMBOL, ALLOW_SYMBOL])) + "}) do",
        "  rspamd_config:register_symbol({name = name, type = 'normal', score = 0.0,",
        "    group = 'mailhost', flags = 'nostat,explicit_disable', callback = function() end})",
        "end",
        "",
    ])


# --- unbound ------------------------------------------------------------------------------------


def render_unbound_conf(state_dir: Path, port: int, cfg: InboundConfig) -> str:
    s = Path(state_dir)
    lines = [
        f"# {HEADER}",
        "server:",
        "  interface: 127.0.0.1",
        f"  port: {port}",
        "  do-ip6: no",
        "  do-daemonize: yes",
        f"  username: {UNBOUND_USER}",
        '  chroot: ""',
        f"  directory: {s}/unbound",
        f"  pidfile: {s}/{UNBOUND_PID}",
        f"  logfile: {s}/log/unbound.log",
        "  use-syslog: no",
        "  verbosity: 1",
        "  num-threads: 1",
        "  access-control: 127.0.0.0/8 allow",
        "  # A validating resolver: DNSSEC-signed answers are checked (DANE, DMARC, SPF).",
        '  module-config: "validator iterator"',
        f"  trust-anchor-file: {ROOT_TRUST_ANCHOR}",
        "  harden-glue: yes",
        "  harden-dnssec-stripped: yes",
        "  qname-minimisation: yes",
        "  prefetch: yes",
        "  msg-cache-size: 8m",
        "  rrset-cache-size: 16m",
    ]
    if cfg.resolver_mode == "local":
        lines += [
            "  # Local mode (development, tests, offline): only the hosted domains and fixture",
            "  # zones answer; every other name is NXDOMAIN at once, so blocklist lookups fail",
            "  # fast instead of timing out.",
            '  local-zone: "." static',
            "  # unbound's built-in localhost zone would refuse the records of a mail host named",
            "  # under it (the development default, mail.localhost).",
            '  local-zone: "localhost." static',
            f"  include: {s}/{HOSTED_ZONE_FILE}",
            f'  include: "{s}/{FIXTURE_ZONES_DIR}/*.conf"',
        ]
    if cfg.resolver_upstreams and cfg.resolver_mode == "recursive":
        lines += ["forward-zone:", '  name: "."']
        lines += [f"  forward-addr: {upstream}" for upstream in cfg.resolver_upstreams]
    return _lines(*lines)


def render_local_data(lines: Iterable[str]) -> str:
    """unbound `local-data:` for zone-file lines (dnspython-rendered: `name ttl IN type data`).
    Single quotes outside: TXT data carries double quotes. A line that could end the quoted
    string or start another statement is refused."""
    out = [f"# {HEADER}"]
    for line in sorted(set(lines)):
        if "'" in line or "\n" in line or "\\" in line.replace('\\"', ""):
            raise UnsafeInboundValue(f"refusing to render local-data {line!r}")
        out.append(f"  local-data: '{line}'")
    return "\n".join(out) + "\n"


# --- Dovecot: spam filing and learning --------------------------------------------------------


def render_spam_sieve() -> str:
    return _lines(
        f"# {HEADER}",
        "# Runs before any other script (sieve_before). Rspamd's \"add header\" action",
        "# (spam score, DMARC quarantine) goes to Junk and nothing else runs for it; everything",
        "# else falls through to the portal's and the user's scripts.",
        'require ["fileinto", "mailbox"];',
        f'if header :is "{SPAM_HEADER}" "Yes" {{',
        f'  fileinto :create "{JUNK}";',
        "  stop;",
        "}",
    )


def render_learn_sieve(kind: str) -> str:
    return _lines(
        f"# {HEADER}",
        f"# IMAPSieve: a message {'moved into' if kind == 'spam' else 'moved out of'} Junk "
        f"trains Rspamd as {kind}.",
        'require ["vnd.dovecot.pipe", "copy", "imapsieve", "environment", "variables"];',
        'if environment :matches "imap.mailbox" "*" {',
        '  set "mailbox" "${1}";',
        "}",
        'if string "${mailbox}" "Trash" {',
        "  stop;",
        "}",
        f'pipe :copy "rspamd-learn-{kind}";',
    )


def render_learn_program(state_dir: Path, kind: str) -> str:
    socket = f"{state_dir}/{RSPAMD_CONTROLLER_SOCKET}"
    return _lines(
        "#!/bin/sh",
        f"# {HEADER}",
        f"# Dovecot pipes the message here (as the mail user); Rspamd learns it as {kind}.",
        f'exec /usr/bin/rspamc -h "{socket}" learn_{kind}',
    )


def dovecot_inbound_lines(state_dir: Path) -> list[str]:
    """Lines for dovecot.conf: the global spam script and IMAPSieve learning."""
    s = Path(state_dir)
    return [
        "# Inbound (mailhost/backend/inbound.py): Rspamd's spam header files into Junk from a",
        "# global script that runs before the portal's and the user's own; moving a message",
        "# into or out of Junk trains Rspamd (IMAPSieve + rspamc).",
        "# (The spam script is sieve_before, in the main plugin block with the other scripts.)",
        "plugin {",
        "  sieve_plugins = sieve_imapsieve sieve_extprograms",
        "  sieve_global_extensions = +vnd.dovecot.pipe +vnd.dovecot.environment",
        f"  sieve_pipe_bin_dir = {s}/{SIEVE_BIN_DIR}",
        f"  imapsieve_mailbox1_name = {JUNK}",
        "  imapsieve_mailbox1_causes = COPY APPEND",
        f"  imapsieve_mailbox1_before = file:{s}/{LEARN_SPAM_SIEVE}",
        "  imapsieve_mailbox2_name = *",
        f"  imapsieve_mailbox2_from = {JUNK}",
        "  imapsieve_mailbox2_causes = COPY",
        f"  imapsieve_mailbox2_before = file:{s}/{LEARN_HAM_SIEVE}",
        "}",
    ]


# --- the inbound guard (circuit breaker, flow counters) ---------------------------------------


def render_guard_json(state_dir: Path, hostname: str, resolver_port: int,
                      cfg: InboundConfig) -> str:
    s = Path(state_dir)
    return json.dumps(
        {
            "bypass_map": f"{s}/{GREYLIST_BYPASS_MAP}",
            "deferred_dir": f"{s}/spool/deferred",
            "deferred_threshold": cfg.breaker_deferred_threshold,
            "flow_db": f"{s}/{FLOW_DB}",
            "rspamd_log": f"{s}/log/rspamd.log",
            "interval_seconds": cfg.breaker_interval_seconds,
            "pid_file": f"{s}/run/inbound-guard/inbound-guard.pid",
            "probe_name": hostname,
            "resolver": ["127.0.0.1", resolver_port],
            "status_file": f"{s}/{GUARD_STATUS}",
        },
        indent=2,
        sort_keys=True,
    ) + "\n"


def _lines(*lines: str) -> str:
    return "\n".join(lines) + "\n"


# --- the node's static inbound files, and Postfix's port-25 options ---------------------------

PIPE_PROGRAMS = (f"{SIEVE_BIN_DIR}/rspamd-learn-spam", f"{SIEVE_BIN_DIR}/rspamd-learn-ham")


def render_inbound_files(cfg) -> dict[str, str]:
    """Every static inbound file of a node (`cfg`: a mailhost.backend.config.NodeConfig)."""
    s, inbound = cfg.state_dir, cfg.inbound
    files = {"rspamd/rspamd.conf": render_rspamd_conf(s)}
    for rel, text in render_rspamd_local(s, cfg.hostname, cfg.ports["resolver"], inbound).items():
        files[f"rspamd/{rel}"] = text
    files["unbound/unbound.conf"] = render_unbound_conf(s, cfg.ports["resolver"], inbound)
    files[SPAM_SIEVE] = render_spam_sieve()
    files[LEARN_SPAM_SIEVE] = render_learn_sieve("spam")
    files[LEARN_HAM_SIEVE] = render_learn_sieve("ham")
    for program in PIPE_PROGRAMS:
        files[program] = render_learn_program(s, program.rsplit("-", 1)[1])
    files[GUARD_CONFIG] = render_guard_json(s, cfg.hostname, cfg.ports["resolver"], inbound)
    return files


def smtp_inbound_options(cfg: InboundConfig) -> tuple[str, ...]:
    """master.cf -o options of the MX listener: per-client limits (Postfix's anvil), the
    recipients a message may have, and the clients allowed to use XCLIENT (tests only)."""
    options = [
        f"smtpd_client_connection_rate_limit={cfg.connection_rate_limit}",
        f"smtpd_client_message_rate_limit={cfg.message_rate_limit}",
        f"smtpd_recipient_limit={cfg.max_recipients}",
        # A client that sends commands ahead of our replies without PIPELINING: a bot.
        "smtpd_data_restrictions=reject_unauth_pipelining",
    ]
    if cfg.xclient_hosts:
        options.append(f"smtpd_authorized_xclient_hosts={','.join(cfg.xclient_hosts)}")
    return tuple(options)
