"""Validation and normalisation of every name that can reach a map, a config line or a path.

Domains are stored IDNA (A-label) lower case. Local parts come in two grammars:

* Hosted (a mailbox or alias of ours): `HOSTED_LOCAL_PART`, lower-case letters, digits and
  `.` `_` `-`, starting with a letter or digit, no double or trailing dot. It is the one grammar
  every part of the stack serves the same way: Postfix cuts an address at `+`
  (recipient_delimiter, so `name+tag@` is delivered to `name@`), and Dovecot logs in only
  these characters (auth_username_chars, set to match in dovecot.conf). Characters RFC 5322
  allows beyond it (`~ ' ` ^ % ! # $ & * = ? { } |`) were accepted once and could not be served.
* External (a forwarding destination, a report address): what RFC 5321 allows in a dot-atom,
  minus anything that could break a lookup row or a config file.

Hostile input raises InvalidName with a message fit to show the person who typed it.
"""

import re

MAX_DOMAIN_LENGTH = 253  # RFC 1035 presentation form, without the trailing dot
MAX_LABEL_LENGTH = 63
MAX_LOCAL_PART_LENGTH = 64  # RFC 5321 4.5.3.1.1
MAX_ADDRESS_LENGTH = 254  # RFC 5321 path limit minus the angle brackets

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
# Hosted local parts: see the module docstring. mailhost/backend/render.py checks the same.
HOSTED_LOCAL_PART = re.compile(r"^[a-z0-9](?:[a-z0-9_-]|\.(?=[a-z0-9_-]))*$")
HOSTED_LOCAL_PART_RULE = (
    "use lower-case letters a-z, digits 0-9 and the characters . _ - (starting with a letter "
    "or digit; no leading, trailing or double dot)"
)
# dot-atom text (RFC 5322 atext) without the characters that break map lines or configs.
_LOCAL_PART = re.compile(r"^[a-z0-9!#$%&'*+/=?^_`{}~-]+(\.[a-z0-9!#$%&'*+/=?^_`{}~-]+)*$")
_UNSAFE_IN_LOCAL_PART = set('|:,;"\\<>()[]@ \t\r\n\0/')
_SELECTOR = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")


class InvalidName(ValueError):
    """A name that must not reach the mail stack. The message says why, in plain words."""


def normalise_domain(raw: str) -> str:
    """Return the IDNA A-label form of `raw`, lower case, or raise InvalidName."""
    if not isinstance(raw, str) or not raw.strip():
        raise InvalidName("Enter a domain name.")
    name = raw.strip()
    if any(ch in name for ch in "\0\r\n\t /\\:|,;@"):
        raise InvalidName(f"{raw!r} is not a domain name: it contains a space or separator.")
    if name.endswith("."):
        name = name[:-1]  # the root dot is implied; 'example.com.' is 'example.com'
    if ".." in name or name.startswith("."):
        raise InvalidName(f"{raw!r} is not a domain name: it has an empty label.")
    try:
        ascii_name = _to_ascii(name)
    except UnicodeError as exc:
        raise InvalidName(
            f"{raw!r} is not a valid internationalised domain name ({exc})."
        ) from None
    labels = ascii_name.split(".")
    if len(labels) < 2:
        raise InvalidName(f"{raw!r} needs at least two labels, like example.com.")
    if len(ascii_name) > MAX_DOMAIN_LENGTH:
        raise InvalidName(f"{raw!r} is longer than {MAX_DOMAIN_LENGTH} characters.")
    for label in labels:
        if len(label) > MAX_LABEL_LENGTH:
            raise InvalidName(f"The label {label[:20]!r}… is longer than 63 characters.")
        if not _LABEL.match(label):
            raise InvalidName(
                f"{raw!r} is not a host name: labels use letters, digits and inner hyphens only."
            )
    if labels[-1].isdigit():
        raise InvalidName(f"{raw!r} looks like an IP address, not a domain name.")
    return ascii_name


def _to_ascii(name: str) -> str:
    labels = []
    for label in name.split("."):
        if label.isascii():
            labels.append(label.lower())
        else:
            labels.append("xn--" + label.lower().encode("punycode").decode("ascii"))
            # Round-trip through the idna codec to refuse labels IDNA 2003 rejects.
            label.lower().encode("idna")
    return ".".join(labels)


def domain_for_display(ascii_name: str) -> str:
    """The Unicode (U-label) form for people; the stored A-label form stays canonical."""
    labels = []
    for label in ascii_name.split("."):
        if label.startswith("xn--"):
            try:
                labels.append(label[4:].encode("ascii").decode("punycode"))
            except UnicodeError:
                labels.append(label)
        else:
            labels.append(label)
    return ".".join(labels)


def normalise_local_part(raw: str) -> str:
    """Return the lower-case local part of a hosted address (mailbox or alias), or raise
    InvalidName naming the allowed characters."""
    local = _checked_local_part(raw)
    if not HOSTED_LOCAL_PART.match(local):
        reason = ""
        if "+" in local:
            reason = (" '+' separates a tag: name+tag@ is delivered to name@, so it cannot be "
                      "part of a hosted address.")
        raise InvalidName(
            f"{raw!r} cannot be a hosted address: {HOSTED_LOCAL_PART_RULE}.{reason}"
        )
    return local


def normalise_external_local_part(raw: str) -> str:
    """Return the lower-case local part of any address we may send to, or raise InvalidName."""
    local = _checked_local_part(raw)
    if not _LOCAL_PART.match(local):
        raise InvalidName(
            f"{raw!r} is not a valid local part: use letters, digits and . _ - +, "
            "with no leading, trailing or double dot."
        )
    return local


def _checked_local_part(raw: str) -> str:
    """Lower case; refuses what no grammar of ours allows (empty, separators, too long)."""
    if not isinstance(raw, str) or raw == "":
        raise InvalidName("Enter the part of the address before the @.")
    bad = sorted(_UNSAFE_IN_LOCAL_PART.intersection(raw))
    if bad:
        shown = ", ".join(repr(ch) for ch in bad)
        raise InvalidName(f"The local part may not contain {shown}.")
    local = raw.lower()
    if len(local.encode()) > MAX_LOCAL_PART_LENGTH:
        raise InvalidName(f"The local part is longer than {MAX_LOCAL_PART_LENGTH} characters.")
    if not local.isascii():
        raise InvalidName("The local part must be plain ASCII (SMTPUTF8 addresses are not hosted).")
    return local


def split_address(raw: str) -> tuple[str, str]:
    """Split 'user@domain' into a normalised (local_part, domain) pair, or raise InvalidName.

    The broad (external) grammar: a destination, or a lookup of an address that may predate
    the hosted grammar. Services check a new hosted local part with normalise_local_part."""
    if not isinstance(raw, str) or raw.count("@") != 1:
        raise InvalidName(f"{raw!r} is not an e-mail address: it needs exactly one @.")
    local, domain = raw.rsplit("@", 1)
    address = (normalise_external_local_part(local), normalise_domain(domain))
    if len(address[0]) + 1 + len(address[1]) > MAX_ADDRESS_LENGTH:
        raise InvalidName(f"The address is longer than {MAX_ADDRESS_LENGTH} characters.")
    return address


def normalise_address(raw: str) -> str:
    local, domain = split_address(raw)
    return f"{local}@{domain}"


def normalise_selector(raw: str) -> str:
    """A DKIM selector: one DNS label, since it becomes a file name and a TXT owner name."""
    if not isinstance(raw, str) or not _SELECTOR.match(raw.lower()):
        raise InvalidName(f"{raw!r} is not a valid DKIM selector (one DNS label).")
    return raw.lower()
