"""SPF (RFC 7208) evaluation: check_host() and the DNS-lookup count of a whole record tree.

DNS comes through a `lookup(name, rdtype) -> list[str]` callable: TXT values (strings joined),
addresses, MX exchange or PTR names (lower case, no trailing dot); [] when the name or data does
not exist; SpfTempError when the answer is unknown (timeout, SERVFAIL). No Django, no settings.
"""

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass, field

LOOKUP_LIMIT = 10  # RFC 7208 4.6.4
VOID_LIMIT = 2
MX_PTR_LIMIT = 10
_QUALIFIERS = {"+": "pass", "-": "fail", "~": "softfail", "?": "neutral"}
_MECHANISMS = {"all", "include", "a", "mx", "ptr", "ip4", "ip6", "exists"}
_COUNTED = {"include", "a", "mx", "ptr", "exists"}
_MACRO = re.compile(r"%\{([slodiphcrtv])(\d*)(r?)([.\-+,/_=]*)\}|%%|%_|%-")

Lookup = Callable[[str, str], list[str]]


class SpfTempError(Exception):
    """A DNS answer needed for the evaluation is unknown (timeout, SERVFAIL)."""


class SpfPermError(Exception):
    """The published policy is broken: syntax, too many lookups, two records…"""


@dataclass
class SpfResult:
    result: str  # pass fail softfail neutral none permerror temperror
    detail: str = ""
    lookups: int = 0


@dataclass
class _Context:
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address
    sender: str
    helo: str
    lookup: Lookup
    lookups: int = 0
    voids: int = 0
    seen: list[str] = field(default_factory=list)

    def count(self, term: str) -> None:
        self.lookups += 1
        if self.lookups > LOOKUP_LIMIT:
            raise SpfPermError(f"more than {LOOKUP_LIMIT} DNS lookups (at {term})")

    def query(self, name: str, rdtype: str) -> list[str]:
        answers = self.lookup(name, rdtype)
        if not answers:
            self.voids += 1
            if self.voids > VOID_LIMIT:
                raise SpfPermError(f"more than {VOID_LIMIT} lookups found nothing (at {name})")
        return answers


def spf_records(txt_values: list[str]) -> list[str]:
    return [v for v in txt_values if v.lower() == "v=spf1" or v.lower().startswith("v=spf1 ")]


def check_host(
    ip: str, domain: str, lookup: Lookup, *, sender: str = "", helo: str = ""
) -> SpfResult:
    """Evaluate the SPF policy of `domain` for a message from `ip`."""
    ctx = _Context(
        ip=ipaddress.ip_address(ip),
        sender=sender or f"postmaster@{domain}",
        helo=helo or domain,
        lookup=lookup,
    )
    try:
        result, detail = _check(ctx, domain.lower().rstrip("."), depth=0)
    except SpfTempError as exc:
        return SpfResult("temperror", str(exc), ctx.lookups)
    except SpfPermError as exc:
        return SpfResult("permerror", str(exc), ctx.lookups)
    return SpfResult(result, detail, ctx.lookups)


def _record(ctx: _Context, domain: str) -> str | None:
    records = spf_records(ctx.lookup(domain, "TXT"))
    if len(records) > 1:
        raise SpfPermError(f"{domain} publishes {len(records)} SPF records; only one is allowed")
    return records[0] if records else None


def _check(ctx: _Context, domain: str, depth: int) -> tuple[str, str]:
    if depth > LOOKUP_LIMIT:
        raise SpfPermError("include/redirect loop")
    record = _record(ctx, domain)
    if record is None:
        return "none", f"{domain} has no SPF record"
    directives, redirect = _parse(record)
    for qualifier, name, arg, cidr in directives:
        if _matches(ctx, domain, name, arg, cidr, depth):
            return _QUALIFIERS[qualifier], f"matched {qualifier}{name}{':' + arg if arg else ''}"
    if redirect is not None:
        ctx.count("redirect")
        target = _expand(ctx, redirect, domain)
        result, detail = _check(ctx, target, depth + 1)
        if result == "none":
            raise SpfPermError(f"redirect={target}: {detail}")
        return result, detail
    return "neutral", "no mechanism matched"


def _parse(record: str) -> tuple[list[tuple[str, str, str, str]], str | None]:
    directives, redirect = [], None
    for term in record.split()[1:]:
        match = re.match(r"^([a-zA-Z][a-zA-Z0-9_.-]*)=(.*)$", term)
        if match:
            if match.group(1).lower() == "redirect":
                if redirect is not None:
                    raise SpfPermError("two redirect= modifiers")
                redirect = match.group(2)
            continue  # exp= and unknown modifiers do not change the result
        qualifier = term[0] if term[0] in _QUALIFIERS else "+"
        body = term[1:] if term[0] in _QUALIFIERS else term
        head, _, arg = body.partition(":")
        name, slash, cidr = head.partition("/")  # a/24, mx//64
        name, cidr = name.lower(), slash + cidr
        if name in ("a", "mx") and "/" in arg:  # a:host/24//64
            arg, _, rest = arg.partition("/")
            cidr = "/" + rest
        if name not in _MECHANISMS:
            raise SpfPermError(f"unknown mechanism {term!r}")
        directives.append((qualifier, name, arg, cidr))
    return directives, redirect


def _matches(ctx: _Context, domain: str, name: str, arg: str, cidr: str, depth: int) -> bool:
    if name == "all":
        return True
    if name in ("ip4", "ip6"):
        return _in_network(ctx.ip, arg, name)
    ctx.count(name)
    target = _expand(ctx, arg, domain) if arg else domain
    if name == "include":
        result, _ = _check(ctx, target, depth + 1)
        if result == "pass":
            return True
        if result in ("fail", "softfail", "neutral"):
            return False
        raise SpfPermError(f"include:{target} has no usable SPF record")
    if name == "a":
        return _addresses_match(ctx, ctx.query(target, _rdtype(ctx)), cidr)
    if name == "mx":
        exchanges = ctx.query(target, "MX")
        if len(exchanges) > MX_PTR_LIMIT:
            raise SpfPermError(f"mx:{target} has more than {MX_PTR_LIMIT} MX records")
        return any(_addresses_match(ctx, ctx.lookup(mx, _rdtype(ctx)), cidr) for mx in exchanges)
    if name == "exists":
        return bool(ctx.query(target, "A"))
    return _ptr_matches(ctx, target)  # ptr: discouraged, still evaluated


def _rdtype(ctx: _Context) -> str:
    return "A" if ctx.ip.version == 4 else "AAAA"


def _in_network(ip, spec: str, name: str) -> bool:
    try:
        network = ipaddress.ip_network(spec, strict=False)
    except ValueError:
        raise SpfPermError(f"{name}:{spec} is not an address or network") from None
    if (network.version == 4) != (name == "ip4"):
        raise SpfPermError(f"{name}:{spec} is the wrong address family")
    return ip.version == network.version and ip in network


def _addresses_match(ctx: _Context, addresses: list[str], cidr: str) -> bool:
    if cidr.startswith("//"):
        v4_len, v6_len = "", cidr[2:]
    else:
        v4_len, _, v6_len = cidr[1:].partition("//")
    prefix = (v4_len if ctx.ip.version == 4 else v6_len) or ("32" if ctx.ip.version == 4 else "128")
    for address in addresses:
        try:
            network = ipaddress.ip_network(f"{address}/{prefix}", strict=False)
        except ValueError:
            raise SpfPermError(f"bad CIDR length /{prefix}") from None
        if ctx.ip in network:
            return True
    return False


def _ptr_matches(ctx: _Context, target: str) -> bool:
    reverse = ctx.ip.reverse_pointer
    for name in ctx.lookup(reverse, "PTR")[:MX_PTR_LIMIT]:
        in_target = name == target or name.endswith("." + target)
        if in_target and str(ctx.ip) in ctx.lookup(name, _rdtype(ctx)):
            return True
    return False


def _expand(ctx: _Context, spec: str, domain: str) -> str:
    """Macro expansion (RFC 7208 7): enough for the macros seen in real records."""
    local, _, sender_domain = ctx.sender.rpartition("@")
    values = {
        "s": ctx.sender, "l": local or "postmaster", "o": sender_domain, "d": domain,
        "i": _dotted_ip(ctx.ip), "p": "unknown", "h": ctx.helo,
        "v": "in-addr" if ctx.ip.version == 4 else "ip6", "c": str(ctx.ip), "r": "unknown",
        "t": "0",
    }

    def substitute(match: re.Match) -> str:
        text = match.group(0)
        if text == "%%":
            return "%"
        if text == "%_":
            return " "
        if text == "%-":
            return "%20"
        letter, digits, reverse, delimiters = match.groups()
        parts = re.split("[" + re.escape(delimiters or ".") + "]", values[letter])
        if reverse:
            parts.reverse()
        if digits:
            parts = parts[-int(digits):]
        return ".".join(parts)

    if "%" in _MACRO.sub("", spec):
        raise SpfPermError(f"bad macro in {spec!r}")
    return _MACRO.sub(substitute, spec).lower().rstrip(".")


def _dotted_ip(ip) -> str:
    if ip.version == 4:
        return str(ip)
    return ".".join(ip.exploded.replace(":", ""))


def count_lookups(domain: str, lookup: Lookup) -> int:
    """DNS-querying terms in the whole tree (includes and redirects followed), whatever the IP.

    A receiver checking forged mail walks all of them before it reaches `-all`; past ten it
    gets permerror instead of fail, and the policy stops protecting the domain. Counting stops
    just past the limit.
    """
    counter = [0]
    _count(domain.lower().rstrip("."), lookup, counter)
    return counter[0]


def _count(domain: str, lookup: Lookup, counter: list[int]) -> None:
    records = spf_records(lookup(domain, "TXT"))
    if len(records) != 1:
        return  # none: counted where it was referenced; several: reported by check_host
    directives, redirect = _parse(records[0])
    targets = [(name, arg) for _q, name, arg, _c in directives if name in _COUNTED]
    if redirect is not None:
        targets.append(("redirect", redirect))
    for name, arg in targets:
        counter[0] += 1
        if counter[0] > LOOKUP_LIMIT:
            return
        if name in ("include", "redirect") and arg and "%" not in arg:
            _count(arg.lower().rstrip("."), lookup, counter)
            if counter[0] > LOOKUP_LIMIT:
                return
