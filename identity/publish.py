"""Publishing a domain's records by RFC 2136 dynamic update, signed with TSIG (RFC 8945).

One update message per publish: every managed RRset inside the zone is replaced with the
expected one, names we no longer want (retired DKIM selectors, BIMI when DMARC stops enforcing)
are deleted, and at the domain's own name only the SPF string is swapped, so other TXT records
there (site verifications and the like) survive. Records outside the zone (the mail host's
address, reverse DNS) are the operator's and the IP owner's, never touched.
"""

from dataclasses import dataclass

import dns.exception
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.tsig
import dns.tsigkeyring
import dns.update

from identity.records import Record, in_zone, rdata_text
from identity.spf import spf_records

_ALGORITHMS = {"hmac-sha256": dns.tsig.HMAC_SHA256, "hmac-sha512": dns.tsig.HMAC_SHA512}


class PublishError(Exception):
    """The server did not accept the update; the message says what to fix."""


@dataclass(frozen=True)
class PublishTarget:
    server: str  # IP address of the primary
    port: int
    zone: str
    key_name: str
    algorithm: str
    secret: str  # base64
    timeout: float = 5.0


@dataclass(frozen=True)
class PublishPlan:
    replace: tuple[tuple[str, str, tuple[str, ...]], ...]  # (name, type, rdata texts)
    delete: tuple[tuple[str, str], ...]  # (name, type)
    spf_name: str | None
    spf_value: str | None


def plan(records: list[Record], *, zone: str, remove: list[tuple[str, str]]) -> PublishPlan:
    """What to change: RRsets grouped by (name, type), in-zone only; SPF handled apart."""
    grouped: dict[tuple[str, str], list[str]] = {}
    spf_name = spf_value = None
    for record in records:
        if not in_zone(record.name, zone):
            continue
        if record.key == "spf":
            spf_name, spf_value = record.name, record.value
            continue
        grouped.setdefault((record.name, record.type), []).append(rdata_text(record))
    wanted = set(grouped)
    deletions = tuple(sorted(r for r in set(remove) if r not in wanted and in_zone(r[0], zone)))
    replace = tuple((name, rtype, tuple(values)) for (name, rtype), values in grouped.items())
    return PublishPlan(replace=replace, delete=deletions, spf_name=spf_name, spf_value=spf_value)


def build_update(
    target: PublishTarget, publish_plan: PublishPlan, *, ttl: int, existing_txt: list[str]
) -> dns.update.UpdateMessage:
    keyring = dns.tsigkeyring.from_text({target.key_name: target.secret})
    update = dns.update.UpdateMessage(
        target.zone, keyring=keyring, keyalgorithm=_ALGORITHMS[target.algorithm]
    )
    for name, rtype in publish_plan.delete:
        update.delete(_absolute(name), rtype)
    for name, rtype, values in publish_plan.replace:
        if rtype == "CNAME":
            update.delete(_absolute(name))  # a CNAME cannot live beside other data
        rdatas = [dns.rdata.from_text(dns.rdataclass.IN, rtype, v) for v in values]
        update.replace(_absolute(name), ttl, *rdatas)
    if publish_plan.spf_name is not None:
        _swap_spf(update, publish_plan, ttl=ttl, existing_txt=existing_txt)
    return update


def _swap_spf(update, publish_plan: PublishPlan, *, ttl: int, existing_txt: list[str]) -> None:
    name = _absolute(publish_plan.spf_name)
    ours = _txt_rdata(publish_plan.spf_value)
    for value in spf_records(existing_txt):
        if value != publish_plan.spf_value:
            update.delete(name, _txt_rdata(value))
    if publish_plan.spf_value not in existing_txt:
        update.add(name, ttl, ours)


def _txt_rdata(value: str):
    record = Record("", "", "TXT", value, "")
    return dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.TXT, rdata_text(record))


def _absolute(name: str) -> dns.name.Name:
    return dns.name.from_text(name.rstrip(".") + ".")


def existing_txt(target: PublishTarget, name: str) -> list[str]:
    """TXT strings at `name`, asked of the primary itself (a resolver's cache may be stale)."""
    query = dns.message.make_query(_absolute(name), dns.rdatatype.TXT)
    try:
        response = dns.query.tcp(query, target.server, port=target.port, timeout=target.timeout)
    except (OSError, dns.exception.DNSException) as exc:
        raise PublishError(f"{target.server} port {target.port} did not answer: {exc}") from None
    texts = []
    for rrset in response.answer:
        if rrset.rdtype == dns.rdatatype.TXT:
            texts += [b"".join(rr.strings).decode("utf-8", "replace") for rr in rrset]
    return texts


def send(target: PublishTarget, update: dns.update.UpdateMessage) -> None:
    try:
        response = dns.query.tcp(update, target.server, port=target.port, timeout=target.timeout)
    except dns.tsig.PeerBadKey:
        raise PublishError(f"The server does not know the TSIG key {target.key_name}.") from None
    except dns.tsig.PeerBadSignature:
        raise PublishError(f"The server rejected the TSIG signature of {target.key_name} "
                           "(wrong secret or algorithm).") from None
    except dns.tsig.PeerError as exc:
        raise PublishError(f"The server rejected the TSIG signature: {exc}.") from None
    except (OSError, dns.exception.DNSException) as exc:
        raise PublishError(f"{target.server} port {target.port} did not answer: {exc}") from None
    rcode = response.rcode()
    if rcode != dns.rcode.NOERROR:
        hints = {
            dns.rcode.NOTAUTH: " (the key may not update this zone, or the server is not "
                               "authoritative for it)",
            dns.rcode.REFUSED: " (updates are not allowed for this key or zone)",
        }
        raise PublishError(
            f"The server answered {dns.rcode.to_text(rcode)} to the update of {target.zone}"
            f"{hints.get(rcode, '')}."
        )


def publish(
    target: PublishTarget, records: list[Record], *, remove: list[tuple[str, str]], ttl: int
) -> PublishPlan:
    """Publish `records` (in-zone ones) and delete `remove`, in one signed update."""
    publish_plan = plan(records, zone=target.zone, remove=remove)
    current = existing_txt(target, publish_plan.spf_name) if publish_plan.spf_name else []
    send(target, build_update(target, publish_plan, ttl=ttl, existing_txt=current))
    return publish_plan
