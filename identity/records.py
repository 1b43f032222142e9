"""The DNS records a hosted domain should publish, and their BIND zone-file form. Pure.

Input is a frozen snapshot (built by identity.selectors from the models and settings); output
is a sorted list of records, each with a stable `key` that the verifier's results are filed
under. No ORM, no I/O, no clock.

Values carry text an organisation typed (report addresses), so the zone file and RFC 2136
updates are rendered from dnspython's typed rdata, never by joining strings: a TXT value is a
list of character-strings that dnspython quotes and escapes, so even a value that slipped past
validation cannot end its string or start a second record.
"""

import functools
from dataclasses import dataclass

import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.TXT
import dns.reversename
import dns.tokenizer

from identity import dkim, dmarc, mtasts
from mailhost.endpoints import ClientEndpoints

SRV_RECORDS = (
    # (key, owner label, ClientEndpoints field, purpose). The port is the one autoconfig,
    # autodiscover and the setup page give too (mailhost.endpoints): the one that answers.
    ("srv:submissions", "_submissions._tcp", "submissions",
     "Mail clients find implicit-TLS submission"),
    ("srv:imaps", "_imaps._tcp", "imaps", "Mail clients find IMAP over TLS"),
    ("srv:autodiscover", "_autodiscover._tcp", "https", "Outlook finds its autodiscover service"),
    # RFC 6764: the client then asks the host for /.well-known/caldav (or carddav), which the
    # edge redirects to /dav/.
    ("srv:caldavs", "_caldavs._tcp", "dav", "Calendar apps find CalDAV over TLS"),
    ("srv:carddavs", "_carddavs._tcp", "dav", "Contact apps find CardDAV over TLS"),
)
TXT_CHUNK = 255  # bytes per character-string (RFC 1035 3.3)
# Domain ownership: the owner publishes a TXT record of this value at this name (RFC 8552
# underscored label), as Google Workspace and Microsoft 365 ask for theirs. Its own name keeps
# the apex TXT set (SPF, which every receiver fetches) small and untouched, lets RFC 2136
# publishing replace it as one RRset, and can be CNAMEd to a DNS provider that manages it.
VERIFICATION_LABEL = "_mailhost-verify"
VERIFICATION_PREFIX = "mailhost-verification="


@dataclass(frozen=True)
class DkimKeySnap:
    selector: str
    algorithm: str
    public_key: str
    state: str


@dataclass(frozen=True)
class PostureSnap:
    domain: str
    mail_host: str
    portal_host: str
    ipv4: tuple[str, ...]
    ipv6: tuple[str, ...]
    dkim_keys: tuple[DkimKeySnap, ...]
    dmarc: dmarc.Dmarc
    mtasts_mode: str
    mtasts_mx: tuple[str, ...]
    mtasts_max_age: int
    tlsrpt_rua: tuple[str, ...]
    bimi_url: str | None  # set when a logo is stored
    clients: ClientEndpoints  # where mail clients connect: the SRV targets and ports
    # Set while the domain's ownership is not verified, and after a DNS verification (keep the
    # record); None when ownership needs no record (staff, special-use name, …).
    verification_token: str | None = None
    # The SPF includes of the relay the domain's mail leaves by (routing/): `include:` terms.
    spf_includes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Record:
    key: str
    name: str  # absolute, without the trailing dot
    type: str
    value: str  # presentation form, unquoted for TXT
    purpose: str


def mtasts_policy(snap: PostureSnap) -> str:
    return mtasts.policy_text(
        mode=snap.mtasts_mode, mx=snap.mtasts_mx or (snap.mail_host,), max_age=snap.mtasts_max_age
    )


def spf_value(snap: PostureSnap) -> str:
    """Our sending addresses by IP (no DNS lookups for receivers), else the mail host's A."""
    terms = [f"ip4:{ip}" for ip in snap.ipv4] + [f"ip6:{ip}" for ip in snap.ipv6]
    if not terms:
        terms = [f"a:{snap.mail_host}"]
    terms += [f"include:{name}" for name in snap.spf_includes]
    return " ".join(["v=spf1", *terms, "-all"])


def bimi_published(snap: PostureSnap) -> bool:
    """BIMI only means something once DMARC enforces on all mail (quarantine/reject, pct=100)."""
    return snap.bimi_url is not None and dmarc.enforces(snap.dmarc)


def verification_name(domain: str) -> str:
    return f"{VERIFICATION_LABEL}.{domain}"


def ownership_record(domain: str, token: str) -> Record:
    return Record(
        "verification", verification_name(domain), "TXT", f"{VERIFICATION_PREFIX}{token}",
        "Proves you control the domain: until it is seen, no mail is routed or signed for it",
    )


def expected_records(snap: PostureSnap) -> list[Record]:
    d, host = snap.domain, snap.mail_host
    records = [] if snap.verification_token is None else [
        ownership_record(d, snap.verification_token)
    ]
    records += [
        Record("mx", d, "MX", f"10 {host}.", "Mail for the domain is delivered to the mail host"),
        Record("spf", d, "TXT", spf_value(snap), "SPF: the mail host may send for the domain"),
    ]
    for key in sorted(snap.dkim_keys, key=lambda k: k.selector):
        records.append(
            Record(
                f"dkim:{key.selector}",
                f"{key.selector}._domainkey.{d}",
                "TXT",
                dkim.txt_value(key.algorithm, key.public_key),
                f"DKIM public key ({key.algorithm}, {key.state})",
            )
        )
    records.append(
        Record("dmarc", f"_dmarc.{d}", "TXT", dmarc.txt_value(snap.dmarc), "DMARC policy")
    )
    records += _mtasts_records(snap)
    if bimi_published(snap):
        records.append(
            Record("bimi", f"default._bimi.{d}", "TXT", f"v=BIMI1; l={snap.bimi_url}",
                   "BIMI: the logo shown next to authenticated mail")
        )
    records += _client_records(snap)
    records += _host_records(snap)
    return records


def _mtasts_records(snap: PostureSnap) -> list[Record]:
    d = snap.domain
    records = [
        Record("mta-sts", f"_mta-sts.{d}", "TXT", mtasts.sts_txt_value(mtasts_policy(snap)),
               "MTA-STS: senders must use TLS to the listed MX (id changes with the policy)"),
        Record("mta-sts-policy", f"mta-sts.{d}", "CNAME", f"{snap.portal_host}.",
               "MTA-STS: the portal serves the policy at this host over HTTPS"),
    ]
    if snap.tlsrpt_rua:
        records.append(
            Record("tls-rpt", f"_smtp._tls.{d}", "TXT", mtasts.tlsrpt_txt_value(snap.tlsrpt_rua),
                   "TLS-RPT: where senders report TLS failures")
        )
    return records


def _client_records(snap: PostureSnap) -> list[Record]:
    d, host = snap.domain, snap.mail_host
    records = [
        Record("autoconfig", f"autoconfig.{d}", "CNAME", f"{host}.",
               "Thunderbird-style autoconfig (an A record to the same address also works)"),
        Record("autodiscover", f"autodiscover.{d}", "CNAME", f"{host}.",
               "Outlook autodiscover (an A record to the same address also works)"),
    ]
    target = snap.clients.host
    for key, label, field, purpose in SRV_RECORDS:
        port = getattr(snap.clients, field)
        records.append(Record(key, f"{label}.{d}", "SRV", f"0 1 {port} {target}.", purpose))
    return records


def _host_records(snap: PostureSnap) -> list[Record]:
    """The mail host's own address and reverse DNS: the operator's, shared by every domain."""
    records = []
    for rtype, ips in (("A", snap.ipv4), ("AAAA", snap.ipv6)):
        for ip in ips:
            records.append(Record(f"host:{ip}", snap.mail_host, rtype, ip,
                                  "The mail host's address (operator's zone)"))
    for ip in (*snap.ipv4, *snap.ipv6):
        reverse = dns.reversename.from_address(ip).to_text(omit_final_dot=True)
        records.append(Record(f"ptr:{ip}", reverse, "PTR", f"{snap.mail_host}.",
                              "Reverse DNS of the mail host, matching forward (IP owner's zone)"))
    return records


def in_zone(name: str, zone: str) -> bool:
    name, zone = name.lower().rstrip("."), zone.lower().rstrip(".")
    return name == zone or name.endswith("." + zone)


def txt_strings(value: str) -> list[bytes]:
    """A TXT value as ≤255-byte character-strings; receivers join them (RFC 6376 3.6.2.2)."""
    raw = value.encode()
    return [raw[i : i + TXT_CHUNK] for i in range(0, len(raw), TXT_CHUNK)] or [b""]


def txt_chunks(value: str) -> list[str]:
    """The same split, as text (values are ASCII once validated)."""
    return [chunk.decode("utf-8", "replace") for chunk in txt_strings(value)]


def record_rdata(record: Record) -> dns.rdata.Rdata:
    """The record's data as a typed dnspython rdata.

    TXT is built from its strings, never parsed from text. Other types are built from values
    the portal makes itself (host names, addresses, numbers), parsed by dnspython and required
    to be exactly one rdata, so a stray line break fails loudly instead of adding a record.
    """
    return _parsed(record, _typed_rdata)


def _parsed(record: Record, parse):
    """`parse(type, value)`, a value that is more than one record refused with its key."""
    try:
        return parse(record.type, record.value)
    except _MoreThanOne:
        raise ValueError(
            f"{record.key}: {record.value!r} is more than one {record.type} record"
        ) from None


class _MoreThanOne(ValueError):
    pass


# Most records of a node's domains share their data (the MX, CNAME and SRV targets are the
# mail host; SPF and report addresses are often the install's): parsed once, not per domain.
# Rdata objects are immutable, so one can be shared.
@functools.lru_cache(maxsize=4096)
def _typed_rdata(rtype: str, value: str) -> dns.rdata.Rdata:
    if rtype == "TXT":
        return dns.rdtypes.ANY.TXT.TXT(dns.rdataclass.IN, dns.rdatatype.TXT, txt_strings(value))
    tokens = dns.tokenizer.Tokenizer(value)
    rdata = dns.rdata.from_text(dns.rdataclass.IN, rtype, tokens)
    if not tokens.get().is_eof():
        raise _MoreThanOne
    return rdata


@functools.lru_cache(maxsize=4096)
def _typed_text(rtype: str, value: str) -> str:
    """`TYPE data` as a zone file line ends."""
    rdata = _typed_rdata(rtype, value)
    return f"{dns.rdatatype.to_text(rdata.rdtype)} {rdata.to_text()}"


def rdata_text(record: Record) -> str:
    """The record's data as it appears in a zone file (TXT quoted, escaped and split)."""
    return record_rdata(record).to_text()


def zone_line(record: Record, *, ttl: int) -> str:
    """`name ttl IN type data`: the owner and the typed rdata each rendered by dnspython, as
    its one-record RRset would print them (without building the set: a node's hosted zone is
    ~14 lines per domain, and the set's hashing was half the cost)."""
    owner = dns.name.from_text(record.name.rstrip(".") + ".")
    return f"{owner} {ttl} IN {_parsed(record, _typed_text)}"


def _comment(text: str) -> str:
    # Comments are plain text of ours, but a line break in one would end the comment.
    return "; " + " ".join("".join(c if c.isprintable() else " " for c in text).split())


def zone_fragment(records: list[Record], *, domain: str, ttl: int) -> str:
    """Copy-paste BIND lines: the domain's records, then (commented) the operator's ones."""
    lines = [_comment(f"DNS records for {domain}, generated by Mailhost."), ""]
    outside = []
    for record in records:
        line = zone_line(record, ttl=ttl)
        if in_zone(record.name, domain):
            lines += [_comment(record.purpose), line]
        else:
            outside.append(f"; {line}")
    if outside:
        lines += ["", "; Outside this zone: the mail host's operator and the IP owner publish"]
        lines += outside
    return "\n".join(lines) + "\n"
