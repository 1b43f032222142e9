"""Forwarding that survives DMARC: SRS (postsrsd) and ARC sealing (Rspamd). Pure renderers.

A message that an alias sends on to an address not hosted here leaves through its own path,
so that nothing else is rewritten or sealed:

  1. The queue manager picks the transport by sender (sender_dependent_default_transport_maps):
     a message leaving for another domain with a sender neither hosted here nor in the SRS
     domain can only be forwarded (nothing else may relay), and goes to `mailhost-forward`,
     an SMTP client that hands it to the loopback-only forwarding listener (master.cf).
     A null sender goes direct (nothing to rewrite). A mailbox's Sieve forward leaves with
     the mailbox as envelope sender (SPF passes, signed for its domain): not this path.
  2. That listener runs Rspamd (its `{daemon_name}` is `mailhost-forward`), which ARC-seals
     the message with the install's ARC key (`sign_condition` below), reusing the
     Authentication-Results the MX listener wrote, and a cleanup of its own
     (`forward-cleanup`) whose sender_canonical_maps give the envelope sender an SRS address
     from postsrsd — unless it is in a hosted domain or already the SRS domain (our own
     users' mail keeps its return path and its DKIM-aligned SPF).
  3. The message then leaves like any other (its new sender is the SRS domain's).

Mail for another node's domain takes the same listener whatever its sender (transport_maps
outrank the sender-dependent transport, so it cannot be chosen by sender before it), and
leaves it for that node by FILTER: forwarded copies get their SRS address there too, our own
users' mail keeps its sender (mailhost/backend/peers.py).

Bounces come back to `SRS0=…@<SRS domain>`: the SRS domain is a virtual alias domain of
Postfix, and recipient_canonical_maps ask postsrsd's reverse table, which maps a valid
address back to the original sender and knows nothing of a forged or expired one (Postfix
then answers 550 5.1.1: no open relay through SRS). postsrsd signs with the first secret of
its secrets file and accepts any of them, so a rotation keeps old bounces working for the
grace period the portal keeps the old secret in the file.

Paths (relative to the state directory):

  srs/secrets                   postsrsd's secrets, newest first (root, 0600)
  arc/<domain>.<selector>.key   the ARC private key (_rspamd, 0600)
  rspamd/local.d/arc.conf       Rspamd's ARC module: verify everywhere, seal on the
                                forwarding listener only
  run/postsrsd/postsrsd.pid
"""

import base64
import binascii
import re
from dataclasses import dataclass
from pathlib import PurePosixPath

HEADER = "Managed by Mailhost (mailhost/backend/forwarding.py); local edits are overwritten."

SRS_SECRETS = "srs/secrets"
ARC_DIR = "arc"
ARC_CONF = "rspamd/local.d/arc.conf"
POSTSRSD_PID = "run/postsrsd/postsrsd.pid"
POSTSRSD_USER = "nobody"
FORWARD_TRANSPORT = "mailhost-forward"
FORWARD_CLEANUP = "forward-cleanup"
FORWARD_DAEMON_NAME = "mailhost-forward"  # Postfix's {daemon_name} → Rspamd's MTA-Name
DEFAULT_FORWARD_PORT = 2528
DEFAULT_SRS_FORWARD_PORT = 2529
DEFAULT_SRS_REVERSE_PORT = 2530

_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_DOMAIN = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*$")
_SELECTOR = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
# A postsrsd secret: one line of printable ASCII without spaces (the portal makes base64).
_SECRET = re.compile(r"^[A-Za-z0-9+/=_-]{16,128}$")


class UnsafeForwardingValue(ValueError):
    """A value that must never reach postsrsd's or Rspamd's configuration."""


@dataclass(frozen=True)
class ArcSnap:
    """The install's ARC sealing key: d=<domain>, s=<selector>."""

    domain: str
    selector: str
    private_key_pem: bytes


@dataclass(frozen=True)
class ForwardingSnap:
    """What the node needs from the portal: SRS secrets (the signing one first) and the ARC
    key (None until the portal made one: forwarded mail is then not sealed)."""

    srs_secrets: tuple[str, ...]
    arc: ArcSnap | None = None


def check_domain(value: str, what: str = "domain") -> str:
    if not isinstance(value, str) or not _DOMAIN.match(value):
        raise UnsafeForwardingValue(f"refusing to render {what} {value!r}")
    return value


def arc_key_path(arc: ArcSnap) -> str:
    domain = check_domain(arc.domain, "ARC domain")
    if not _SELECTOR.match(arc.selector):
        raise UnsafeForwardingValue(f"refusing to render ARC selector {arc.selector!r}")
    return f"{ARC_DIR}/{domain}.{arc.selector}.key"


def render_srs_secrets(secrets: tuple[str, ...]) -> bytes:
    """postsrsd's secrets file: one per line, the first signs, every one verifies."""
    if not secrets:
        raise UnsafeForwardingValue("postsrsd needs at least one secret")
    for secret in secrets:
        if not isinstance(secret, str) or not _SECRET.match(secret):
            raise UnsafeForwardingValue("refusing to render a malformed SRS secret")
    return "".join(f"{secret}\n" for secret in secrets).encode()


def render_arc_conf(state_dir: str, arc: ArcSnap | None) -> str:
    """Rspamd's ARC module: verify on every listener; seal only on the forwarding listener
    (MTA-Name: Rspamd's milter takes it from Postfix's {daemon_name}), with our key, reusing
    the A-R header the MX listener wrote (the forwarding hop itself sees a loopback client)."""
    lines = [f"# {HEADER}", "sign_local = false;", "sign_authenticated = false;",
             "sign_inbound = false;", 'use_domain = "header";', 'selector = "";']
    if arc is None:
        return "\n".join([*lines, "# No ARC key yet: verify only."]) + "\n"
    key = PurePosixPath(state_dir) / arc_key_path(arc)
    condition = (
        "return function(task)\n"
        "  local name = task:get_request_header('MTA-Name')\n"
        f"  if not name or tostring(name) ~= '{FORWARD_DAEMON_NAME}' then return false end\n"
        f"  return {{domain = '{arc.domain}', selector = '{arc.selector}', key = '{key}'}}\n"
        "end"
    )
    return "\n".join([
        *lines,
        "# Seal forwarded mail only: the forwarding listener (mailhost/backend/forwarding.py).",
        "reuse_auth_results = true;",
        "allow_hdrfrom_mismatch = true;",
        "allow_username_mismatch = true;",
        "allow_envfrom_empty = true;",
        f"sign_condition = <<EOD\n{condition}\nEOD",
    ]) + "\n"


def forwarding_files(state_dir: str, snap: ForwardingSnap) -> dict[str, bytes]:
    """{path relative to the state dir: content} of the forwarding path's node state."""
    files = {
        SRS_SECRETS: render_srs_secrets(snap.srs_secrets),
        ARC_CONF: render_arc_conf(state_dir, snap.arc).encode(),
    }
    if snap.arc is not None:
        files[arc_key_path(snap.arc)] = snap.arc.private_key_pem
    return files


def new_secret(raw: bytes) -> str:
    """A postsrsd secret from random bytes (the caller's: this module reads no entropy)."""
    return base64.b64encode(raw).decode("ascii")


# --- SRS addresses (RFC-less de-facto scheme of libsrs2, as postsrsd 1.x writes them) --------

_BASE32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
SRS_MAX_AGE_DAYS = 21  # postsrsd 1.x (libsrs2's default): older addresses are refused


def srs_timestamp(day: int) -> str:
    """Two base32 characters of the day number (days since the epoch, modulo 1024)."""
    return _BASE32[(day >> 5) & 31] + _BASE32[day & 31]


def srs_hash(secret: str, *parts: str) -> str:
    """The first four characters of base64(HMAC-SHA1(secret, lower-cased parts))."""
    import hashlib
    import hmac

    mac = hmac.new(secret.encode(), digestmod=hashlib.sha1)
    for part in parts:
        mac.update(part.lower().encode())
    return base64.b64encode(mac.digest()).decode()[:4]


def srs0_address(secret: str, sender: str, *, day: int, srs_domain: str) -> str:
    """`SRS0=HHHH=TT=domain=local@srs_domain`: what postsrsd makes of `sender` on `day`."""
    local, _, domain = sender.rpartition("@")
    stamp = srs_timestamp(day)
    return f"SRS0={srs_hash(secret, stamp, domain, local)}={stamp}={domain}={local}@{srs_domain}"


def is_secret(value: str) -> bool:
    try:
        return bool(_SECRET.match(value)) and bool(base64.b64decode(value, validate=True))
    except (binascii.Error, ValueError):
        return False
