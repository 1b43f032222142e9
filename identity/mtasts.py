"""MTA-STS (RFC 8461) and SMTP TLS reporting (RFC 8460): policy text, its id, parsing. Pure.

The policy is served at https://mta-sts.<domain>/.well-known/mta-sts.txt; the `_mta-sts` TXT
record carries an id derived from the policy text, so the id changes exactly when the policy
does and senders know to fetch it again.
"""

import hashlib
import re
from dataclasses import dataclass

MODES = ("enforce", "testing", "none")
MAX_AGE_LIMIT = 31557600  # RFC 8461 3.2: at most one year
POLICY_PATH = "/.well-known/mta-sts.txt"
POLICY_HOST_PREFIX = "mta-sts."

_MX_PATTERN = re.compile(r"(\*\.)?(?!-)[a-z0-9-]{1,63}(?<!-)(\.(?!-)[a-z0-9-]{1,63}(?<!-))+")


class PolicyError(ValueError):
    """A policy text that does not parse as RFC 8461 requires."""


@dataclass(frozen=True)
class Policy:
    mode: str
    mx: tuple[str, ...]
    max_age: int
    version: str = "STSv1"


def policy_text(*, mode: str, mx: list[str] | tuple[str, ...], max_age: int) -> str:
    """The policy exactly as served: CRLF-separated `key: value` lines (RFC 8461 3.2)."""
    lines = ["version: STSv1", f"mode: {mode}"]
    # Patterns are validated when set; one stored before that which is not a pattern (a line
    # break inside would add policy lines) is left out rather than served.
    lines += [f"mx: {pattern}" for pattern in mx if _MX_PATTERN.fullmatch(pattern)]
    lines.append(f"max_age: {max_age}")
    return "\r\n".join(lines) + "\r\n"


def policy_id(text: str) -> str:
    """1–32 alphanumerics (RFC 8461 3.1); derived from the text, so it changes with it."""
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def sts_txt_value(text: str) -> str:
    return f"v=STSv1; id={policy_id(text)}"


def tlsrpt_txt_value(rua: list[str] | tuple[str, ...]) -> str:
    return f"v=TLSRPTv1; rua={','.join(rua)}"


def parse_policy(text: str) -> Policy:
    """Parse a fetched policy; raise PolicyError saying what is wrong."""
    fields: dict[str, list[str]] = {}
    for line in re.split(r"\r?\n", text):
        if not line.strip():
            continue
        key, sep, value = line.partition(":")
        if not sep:
            raise PolicyError(f"line {line[:60]!r} is not 'key: value'")
        fields.setdefault(key.strip(), []).append(value.strip())
    if fields.get("version") != ["STSv1"]:
        raise PolicyError(f"version is {fields.get('version')}, expected STSv1")
    mode = (fields.get("mode") or [""])[0]
    if mode not in MODES:
        raise PolicyError(f"mode {mode!r} is not one of {', '.join(MODES)}")
    raw_age = (fields.get("max_age") or [""])[0]
    if not raw_age.isdigit() or int(raw_age) > MAX_AGE_LIMIT:
        raise PolicyError(f"max_age {raw_age!r} is not a number of seconds up to {MAX_AGE_LIMIT}")
    mx = tuple(p.lower() for p in fields.get("mx", []))
    if mode != "none" and not mx:
        raise PolicyError("no mx line")
    return Policy(mode=mode, mx=mx, max_age=int(raw_age))


def normalise_mx_pattern(raw: str) -> str:
    """`mail.example.net` or `*.example.net` (RFC 8461 4.1), lower case, no trailing dot."""
    value = (raw or "").strip().lower().rstrip(".")
    # fullmatch: `$` would also match before a final line break, which the policy would serve.
    if len(value) > 253 or not _MX_PATTERN.fullmatch(value):
        raise ValueError(
            f"{raw!r} is not an MX host name or a wildcard like *.example.net."
        )
    return value


def mx_matches(pattern: str, host: str) -> bool:
    """RFC 8461 4.1: a wildcard matches exactly one leftmost label."""
    pattern, host = pattern.lower().rstrip("."), host.lower().rstrip(".")
    if pattern.startswith("*."):
        head, _, rest = host.partition(".")
        return bool(head) and rest == pattern[2:]
    return pattern == host
