"""Outbound TLS posture: what Postfix's smtp client demands of each destination, and how a TLS
failure toward a recipient domain is named (RFC 8460 result types).

Pure: settings and policy rows in, config lines and file contents out; no I/O, no clock.

The policy Postfix applies to a next-hop domain comes from, in order:

1. the per-domain overrides the portal renders (`postfix/tls-policy`, a `texthash:` map the
   reconciler rewrites and reloads Postfix for): e.g. `partner.example secure`;
2. MTA-STS (RFC 8461): `postfix-mta-sts-resolver` as a node daemon (mailhost/backend/mtasts.py)
   answers Postfix's socketmap with `secure match=<the policy's MX patterns>` for a domain whose
   policy is in `enforce` mode, and NOTFOUND otherwise;
3. the install-wide level: `dane` (use DNSSEC-validated TLSA records when published, else
   opportunistic TLS), `dane-only`, `encrypt` or `may`.

The install-wide settings are SMTP_OUTBOUND_TLS_MODE, SMTP_OUTBOUND_DANE_MODE,
SMTP_OUTBOUND_DNSSEC_VALIDATE and SMTP_OUTBOUND_MTA_STS_ENFORCE (see the README, "Outbound").
"""

import json
import re
from dataclasses import dataclass
from pathlib import PurePosixPath

HEADER = "Managed by Mailhost (mailhost/backend/tls_policy.py); local edits are overwritten."

TLS_MODES = ("may", "encrypt")
DANE_MODES = ("off", "dane", "dane-only")
# What a per-domain override may ask for. Never "none": an override can only keep or raise
# the bar (opportunistic "may" already falls back to plaintext when a handshake fails).
POLICY_LEVELS = ("may", "encrypt", "dane", "dane-only", "secure")

POLICY_MAP = "postfix/tls-policy"  # relative to the state dir; texthash: no postmap needed
MTASTS_CONFIG = "mta-sts/mta-sts.json"  # our wrapper's (mailhost/backend/mtasts.py)
MTASTS_DAEMON_CONFIG = "mta-sts/mta-sts-daemon.yml"  # the resolver's own
MTASTS_CACHE = "mta-sts/cache.sqlite"
MTASTS_SOCKET = "run/mta-sts/resolver.sock"
MTASTS_PID = "run/mta-sts/mta-sts.pid"
MTASTS_SOCKETMAP_NAME = "postfix"  # the resolver's zone name Postfix asks in
DEFAULT_CA_PATH = "/etc/ssl/certs"  # Debian's trust store (ca-certificates)

_SAFE_DOMAIN = re.compile(r"^(?=.{1,253}$)[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?$")
_SAFE_PATH = re.compile(r"^/[A-Za-z0-9._/-]+$")


class UnsafeTlsValue(ValueError):
    """A value that must never reach Postfix's TLS policy map or the resolver's config."""


@dataclass(frozen=True)
class OutboundTls:
    """The install-wide outbound TLS posture (Django settings → NodeConfig)."""

    tls_mode: str = "may"  # SMTP_OUTBOUND_TLS_MODE
    dane_mode: str = "dane"  # SMTP_OUTBOUND_DANE_MODE
    dnssec_validate: bool = True  # SMTP_OUTBOUND_DNSSEC_VALIDATE
    mta_sts_enforce: bool = True  # SMTP_OUTBOUND_MTA_STS_ENFORCE
    # The CA bundle that verifies destination certificates (secure/verify levels and the
    # MTA-STS policy fetch); empty: the system's trust store. Tests point it at their test CA.
    ca_file: str = ""  # MAILHOST_OUTBOUND_TLS_CA_FILE

    def __post_init__(self) -> None:
        if self.tls_mode not in TLS_MODES:
            raise ValueError(f"SMTP_OUTBOUND_TLS_MODE is one of {TLS_MODES}, got {self.tls_mode!r}")
        if self.dane_mode not in DANE_MODES:
            raise ValueError(
                f"SMTP_OUTBOUND_DANE_MODE is one of {DANE_MODES}, got {self.dane_mode!r}"
            )
        if self.dane_mode != "off" and not self.dnssec_validate:
            raise ValueError("DANE needs DNSSEC: SMTP_OUTBOUND_DANE_MODE requires "
                             "SMTP_OUTBOUND_DNSSEC_VALIDATE=true (or set it to off)")
        if self.ca_file and not _SAFE_PATH.fullmatch(self.ca_file):
            raise ValueError(f"MAILHOST_OUTBOUND_TLS_CA_FILE must be an absolute plain path, "
                             f"got {self.ca_file!r}")

    @property
    def default_level(self) -> str:
        """Postfix's smtp_tls_security_level. `encrypt` wins over opportunistic DANE: Postfix's
        `dane` falls back to `may` where no TLSA is published, which would undo it."""
        if self.dane_mode == "dane-only":
            return "dane-only"
        if self.tls_mode == "encrypt":
            return "encrypt"
        return "dane" if self.dane_mode == "dane" else "may"


@dataclass(frozen=True)
class TlsPolicySnap:
    """A per-recipient-domain override (routing.TlsPolicy)."""

    domain: str
    level: str


def _domain(value: str) -> str:
    if not isinstance(value, str) or not _SAFE_DOMAIN.fullmatch(value) or ".." in value:
        raise UnsafeTlsValue(f"refusing to render TLS policy domain {value!r}")
    return value


def render_policy_map(policies: list[TlsPolicySnap]) -> str:
    """`postfix/tls-policy`: one `domain level` line per override, sorted."""
    lines = [f"# {HEADER}"]
    for policy in sorted(policies, key=lambda p: p.domain):
        if policy.level not in POLICY_LEVELS:
            raise UnsafeTlsValue(f"refusing to render TLS level {policy.level!r}")
        lines.append(f"{_domain(policy.domain)} {policy.level}")
    return "\n".join(lines) + "\n"


def parse_policy_map(text: str) -> dict[str, str]:
    """The overrides back from the rendered map (the event agent names the policy it met)."""
    policies = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 2 and not line.startswith("#"):
            policies[fields[0].lower()] = fields[1]
    return policies


def postfix_main_cf_lines(state_dir: str, tls: OutboundTls,
                          first_maps: list[str] | None = None) -> list[str]:
    """`first_maps`: tables asked before the per-domain overrides (the relays' TLS modes,
    keyed by next hop, which no recipient domain matches)."""
    s = PurePosixPath(state_dir)
    maps = [*(first_maps or []), f"texthash:{s / POLICY_MAP}"]
    if tls.mta_sts_enforce:
        maps.append(f"socketmap:unix:{s / MTASTS_SOCKET}:{MTASTS_SOCKETMAP_NAME}")
    trust = f"smtp_tls_CAfile = {tls.ca_file}" if tls.ca_file else (
        f"smtp_tls_CApath = {DEFAULT_CA_PATH}")
    return [
        "# Outbound TLS (mailhost/backend/tls_policy.py): relays' TLS modes, per-domain",
        "# overrides, then MTA-STS (the node's resolver daemon, mailhost/backend/mtasts.py),",
        "# then the default.",
        f"smtp_tls_security_level = {tls.default_level}",
        f"smtp_dns_support_level = {'dnssec' if tls.dnssec_validate else 'enabled'}",
        f"smtp_tls_policy_maps = {', '.join(maps)}",
        trust,
        "smtp_tls_loglevel = 1",
        "smtp_tls_mandatory_protocols = >=TLSv1.2",
        f"smtp_tls_session_cache_database = lmdb:{s}/lib/postfix/smtp_scache",
    ]


def render_mtasts_files(state_dir: str, resolver: str, tls: OutboundTls) -> dict[str, str]:
    """The resolver's YAML config (JSON is YAML) and our wrapper's config. `resolver` is the
    node's own validating resolver, `127.0.0.1:<port>`: every lookup goes through it."""
    s = PurePosixPath(state_dir)
    daemon = {
        "path": str(s / MTASTS_SOCKET),
        # Postfix's smtp processes (user postfix) connect; what it answers is public anyway.
        "mode": 0o666,
        "shutdown_timeout": 2,
        "cache": {"type": "sqlite", "options": {"filename": str(s / MTASTS_CACHE)}},
        "default_zone": {"strict_testing": False, "timeout": 4, "require_sni": True},
        "proactive_policy_fetching": {"enabled": False},
    }
    wrapper = {
        "daemon_config": str(s / MTASTS_DAEMON_CONFIG),
        "nameserver": resolver,
        "ca_file": tls.ca_file,
        "pid_file": str(s / MTASTS_PID),
    }
    return {
        MTASTS_DAEMON_CONFIG: f"# {HEADER}\n" + json.dumps(daemon, indent=2, sort_keys=True)
        + "\n",
        MTASTS_CONFIG: json.dumps(wrapper, indent=2, sort_keys=True) + "\n",
    }


# --- failures, as RFC 8460 names them ---------------------------------------------------------

# policy_type values kept with each failure: RFC 8460's, plus "local" for a portal override
# (reported as "no-policy-found" with the override as its policy string).
POLICY_TYPES = ("sts", "tlsa", "local", "no-policy-found")
RESULT_TYPES = (
    "starttls-not-supported", "certificate-host-mismatch", "certificate-expired",
    "certificate-not-trusted", "validation-failure", "tlsa-invalid", "dnssec-invalid",
    "dane-required", "sts-policy-fetch-error", "sts-policy-invalid", "sts-webpki-invalid",
)


def result_type(reply: str, note: str, policy_type: str) -> str | None:
    """The RFC 8460 result type of a deferred or bounced attempt, or None when the reply is not
    a TLS failure. `reply` is Postfix's text in `status=…(…)`; `note` its "certificate
    verification failed …" line of the same smtp process, if any."""
    text, why = reply.lower(), note.lower()
    if "tls is required, but" in text and ("not offered" in text or "refused" in text):
        return "starttls-not-supported"
    if "tlsa" in text:
        return "dnssec-invalid" if "lookup error" in text else "tlsa-invalid"
    unverified = "server certificate not verified" in text
    if policy_type == "tlsa" and (unverified or "server certificate not trusted" in text):
        return "tlsa-invalid"  # no record of the TLSA RRset matched the certificate
    if unverified:
        return "certificate-host-mismatch"
    if "server certificate not trusted" in text:
        if "expired" in why:
            return "certificate-expired"
        if "mismatch" in why:
            return "certificate-host-mismatch"
        return "certificate-not-trusted"
    if "cannot start tls" in text or "tls handshake" in text:
        return "validation-failure"
    return None


def sts_policy_strings(socketmap_answer: str) -> list[str]:
    """`OK secure match=a:b …` (the resolver's answer) as RFC 8460 policy strings."""
    fields = dict(f.split("=", 1) for f in socketmap_answer.split() if "=" in f)
    mxs = [m for m in fields.get("match", "").split(":") if m]
    return ["version: STSv1", "mode: enforce", *(f"mx: {m}" for m in mxs)]
