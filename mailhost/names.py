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

import functools
import re

import idna
from confusable_homoglyphs import categories, confusables
from publicsuffixlist import PublicSuffixList

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

# RFC 2606 / RFC 6761 special-use top-level names: they never resolve on the internet, so no
# one can own them there. Trial installs and the test suite host them without DNS proof.
SPECIAL_USE_TLDS = frozenset({"test", "example", "invalid", "localhost"})
# Scripts that may share one label (UTS #39 "highly restrictive"): Japanese, Chinese and Korean
# writing mixes them by design. Any other mix (Latin with Cyrillic, say) is a lookalike trick.
_ALLOWED_SCRIPT_MIXES = (
    frozenset({"LATIN", "HAN", "HIRAGANA", "KATAKANA"}),
    frozenset({"LATIN", "HAN", "BOPOMOFO"}),
    frozenset({"LATIN", "HAN", "HANGUL"}),
)
_NEUTRAL_SCRIPTS = frozenset({"COMMON", "INHERITED"})


class InvalidName(ValueError):
    """A name that must not reach the mail stack. The message says why, in plain words."""


def normalise_domain(raw: str) -> str:
    """Return the IDNA (UTS #46, non-transitional) A-label form of `raw`, lower case, or raise
    InvalidName. Labels that mix scripts, or that are written wholly in letters that look like
    Latin ones (a Cyrillic 'аррӏе.com'), are refused: they exist to pass for another name."""
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
    except (UnicodeError, idna.IDNAError) as exc:
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
    _refuse_lookalikes(raw, labels)
    return ascii_name


def _to_ascii(name: str) -> str:
    if name.isascii():
        # The common case, kept cheap (bulk imports normalise one domain per row). An A-label
        # typed as ASCII is still decoded below, so 'xn--…' cannot smuggle a homograph in.
        return name.lower()
    return idna.encode(name, uts46=True, transitional=False).decode("ascii")


def _refuse_lookalikes(raw: str, labels: list[str]) -> None:
    tld_is_ascii = not labels[-1].startswith("xn--")
    for label in labels:
        if not label.startswith("xn--"):
            continue
        try:
            unicode_label = idna.decode(label)
        except (UnicodeError, idna.IDNAError) as exc:
            raise InvalidName(f"{raw!r} has an invalid IDNA label {label!r} ({exc}).") from None
        scripts = {categories.alias(ch) for ch in unicode_label} - _NEUTRAL_SCRIPTS
        if len(scripts) > 1 and not any(scripts <= mix for mix in _ALLOWED_SCRIPT_MIXES):
            shown = " and ".join(sorted(s.title() for s in scripts))
            raise InvalidName(
                f"{raw!r} mixes {shown} letters in the label {unicode_label!r}: such names "
                "are refused because they can pass for another name. Use one script per label."
            )
        lookalike = _latin_lookalike(unicode_label, scripts)
        if lookalike and tld_is_ascii:
            raise InvalidName(
                f"{raw!r} is written in {next(iter(scripts)).title()} letters that all look "
                f"like Latin ones ({unicode_label!r} reads as {lookalike!r}): refused as a "
                "lookalike name."
            )


def _latin_lookalike(label: str, scripts: set[str]) -> str | None:
    """The Latin string a label written wholly in one other script passes for, if it does
    (a whole-script confusable, as browsers judge it), else None."""
    if len(scripts) != 1 or "LATIN" in scripts:
        return None
    shown = []
    for ch in label:
        if categories.alias(ch) in _NEUTRAL_SCRIPTS:
            shown.append(ch)
            continue
        found = confusables.is_confusable(ch, preferred_aliases=["latin"])
        if not found:
            return None
        shown.append(found[0]["homoglyphs"][0]["c"])
    return "".join(shown)


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


# --- which names may be hosted at all (pure rules; who holds what is the services' business) --


@functools.cache
def _public_suffixes() -> PublicSuffixList:
    # The list bundled with the `publicsuffixlist` package (ICANN and private sections):
    # upgrading the package updates it.
    return PublicSuffixList()


def is_special_use(ascii_name: str) -> bool:
    """Under .test, .example, .invalid or .localhost (RFC 2606, RFC 6761)."""
    return ascii_name.rsplit(".", 1)[-1] in SPECIAL_USE_TLDS


def is_public_suffix(ascii_name: str) -> bool:
    """A name under which the public registers names (com, co.uk, github.io): nobody owns it."""
    return _public_suffixes().is_public(ascii_name)


def is_within(name: str, parent: str) -> bool:
    """`name` is `parent` or a name below it."""
    return name == parent or name.endswith("." + parent)


def hosting_refusal(
    ascii_name: str, *, reserved_hosts: list[str], allow_reserved_parents: bool = False
) -> str | None:
    """Why `ascii_name` can never be hosted, in words, or None.

    `reserved_hosts` are the service's own names (the mail host, the portal): no tenant may
    host them, names below them or the domains above them (which would capture the service's
    own postmaster, bounces and DNS). `allow_reserved_parents` lets the operator host the
    domain the mail host lives in (its own mail), never the mail host itself.
    """
    if not is_special_use(ascii_name) and is_public_suffix(ascii_name):
        return (
            f"{domain_for_display(ascii_name)} is a public suffix: names are registered under "
            "it, nobody owns it as a whole. Add your own domain, like example."
            f"{domain_for_display(ascii_name)}."
        )
    for host in reserved_hosts:
        if is_within(ascii_name, host):
            return f"{domain_for_display(ascii_name)} is this mail service's own name."
        if is_within(host, ascii_name) and not allow_reserved_parents:
            return (
                f"{domain_for_display(ascii_name)} contains this mail service's own host name; "
                "only the service's staff can host it."
            )
    return None
