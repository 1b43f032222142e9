"""Where DMARC (RFC 7489) and TLS-RPT (RFC 8460) reports go: a strict schema. Pure.

These URIs are typed by an organisation admin and end up inside TXT records, where `,` separates
URIs, `;` separates tags and `!` starts a DMARC size limit, and inside mailto: URIs, where `?`
starts header fields and `%` escapes anything. So the schema is an allow-list, narrower than
what RFC 5322 and RFC 3986 permit: a mailto: whose addr-spec is a dot-atom of letters, digits
and `. _ + = -` at a host name, or an https: URL with a host name, an optional port and a path
and query of URL-safe characters. Anything else is refused with a sentence saying why.
"""

import re
from urllib.parse import urlsplit

from mailhost.names import InvalidName, normalise_domain

MAX_REPORT_URIS = 5
MAX_URI_LENGTH = 256
MAX_LOCAL_PART = 64
MAX_ADDRESS = 254

_LOCAL_PART = re.compile(r"[a-z0-9_+=-]+(?:\.[a-z0-9_+=-]+)*")
# Path and query: RFC 3986 unreserved characters, "/", "?", "=", "&", ":", "+" and valid
# %-escapes; no "@" (userinfo), no "#", and none of the record separators "," ";" "!".
_HTTPS_REST = re.compile(r"(?:[A-Za-z0-9._~/?=&:+-]|%[0-9A-Fa-f]{2})*")


def mailto_uri(raw: str) -> str:
    """`mailto:local@domain` (prefix optional in the input), lower case; ValueError why not."""
    value = _one_line(raw)
    address = value[7:] if value.lower().startswith("mailto:") else value
    local, at, domain = address.rpartition("@")
    if not at or not local:
        raise ValueError(f"{_shown(raw)} is not an e-mail address: it needs one @.")
    local = local.lower()
    if not _LOCAL_PART.fullmatch(local) or len(local) > MAX_LOCAL_PART:
        raise ValueError(
            f"{_shown(raw)}: a report address uses letters, digits and . _ + = - before the @ "
            "(no spaces, quotes, commas, semicolons, ! ? % or line breaks; at most 64)."
        )
    try:
        domain = normalise_domain(domain)
    except InvalidName as exc:
        raise ValueError(f"{_shown(raw)}: {exc}") from None
    if len(local) + 1 + len(domain) > MAX_ADDRESS:
        raise ValueError(f"{_shown(raw)} is longer than {MAX_ADDRESS} characters.")
    return f"mailto:{local}@{domain}"


def https_uri(raw: str) -> str:
    """An https: URL with a host name, optional port, path and query; ValueError why not."""
    value = _one_line(raw)
    if len(value) > MAX_URI_LENGTH:
        raise ValueError(f"{_shown(raw)} is longer than {MAX_URI_LENGTH} characters.")
    if not value.lower().startswith("https://"):
        raise ValueError(f"{_shown(raw)} is not an https:// URL.")
    parts = urlsplit(value)
    rest = value[8 + len(parts.netloc):]
    if "@" in parts.netloc or parts.fragment or not _HTTPS_REST.fullmatch(rest):
        raise ValueError(
            f"{_shown(raw)}: an https report URL has a host, an optional port, and a path and "
            "query of letters, digits and . _ ~ / ? = & : + - or %-escapes (no user name, "
            "#, commas, semicolons or !)."
        )
    try:
        host = normalise_domain(parts.hostname or "")
        port = parts.port
    except (InvalidName, ValueError) as exc:
        raise ValueError(f"{_shown(raw)}: the host or port is not valid ({exc})") from None
    return f"https://{host}{f':{port}' if port else ''}{rest}"


def report_uris(raw, *, https: bool) -> list[str]:
    """A bounded, de-duplicated list of mailto: (and, for TLS-RPT, https:) report URIs."""
    if not isinstance(raw, list | tuple) or len(raw) > MAX_REPORT_URIS:
        raise ValueError(f"Give at most {MAX_REPORT_URIS} report addresses.")
    uris = []
    for item in raw:
        if not isinstance(item, str):
            raise ValueError("Each report address is a string.")
        is_url = "://" in item
        if is_url and not https:
            raise ValueError(f"{_shown(item)}: DMARC reports go to mailto: addresses only.")
        uri = https_uri(item) if is_url else mailto_uri(item)
        if uri not in uris:
            uris.append(uri)
    return uris


def _one_line(raw: str) -> str:
    if not isinstance(raw, str) or not raw.strip():
        raise ValueError("Enter a report address.")
    value = raw.strip()
    if any(not ch.isprintable() or ch.isspace() for ch in value):
        raise ValueError(f"{_shown(raw)} contains a space, a line break or a control character.")
    return value


def _shown(raw) -> str:
    return repr(raw[:80]) if isinstance(raw, str) else repr(raw)
