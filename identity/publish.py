"""Publishing a domain's records by RFC 2136 dynamic update, signed with TSIG (RFC 8945).

One update message per publish: every managed RRset inside the zone is replaced with the
expected one, names we no longer want (retired DKIM selectors, BIMI when DMARC stops enforcing)
are deleted, and at the domain's own name only the SPF string is swapped, so other TXT records
there (site verifications and the like) survive. Records outside the zone (the mail host's
address, reverse DNS) are the operator's and the IP owner's, never touched.

The server is chosen by an organisation admin, so the connection is guarded (see
identity.addresses): a name is resolved once, every address it has must be allowed, and the
whole publish talks to that one checked address (a second resolution could be rebound to
another). One deadline bounds resolving, connecting and both exchanges. Any failure to get a
DNS answer reads the same to the caller, so publishing cannot be used to map open ports; what
really happened is in `PublishError.detail`, for the server log and the staff audit.
"""

import ipaddress
import time
from dataclasses import dataclass

import dns.exception
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.resolver
import dns.tsig
import dns.tsigkeyring
import dns.update

from identity.addresses import Network, normalise, refusal
from identity.records import Record, in_zone, record_rdata
from identity.spf import spf_records

_ALGORITHMS = {"hmac-sha256": dns.tsig.HMAC_SHA256, "hmac-sha512": dns.tsig.HMAC_SHA512}

NO_ANSWER = (
    "The DNS server gave no usable answer to the update. A closed or filtered port, a server "
    "that does not speak DNS and one that did not answer within the time limit all look the "
    "same here: check the server's address and port. The server log has the details."
)


class PublishError(Exception):
    """The update did not go through.

    `public` is what the organisation is told; `detail` (address, port and the real cause) is
    for the server log and the staff-only audit, never for the caller.
    """

    def __init__(self, public: str, detail: str = ""):
        super().__init__(public)
        self.public = public
        self.detail = detail or public


class TargetRefused(PublishError):
    """The configured server is not somewhere the portal may connect to; nothing was sent."""


@dataclass(frozen=True)
class PublishTarget:
    server: str  # IP address or host name of the primary, as configured
    port: int
    zone: str
    key_name: str
    algorithm: str
    secret: str  # base64
    timeout: float = 10.0  # seconds for the whole publish: resolve, connect, query, update


@dataclass(frozen=True)
class PublishPlan:
    replace: tuple[tuple[str, str, tuple[Record, ...]], ...]  # (name, type, records)
    delete: tuple[tuple[str, str], ...]  # (name, type)
    spf_name: str | None
    spf_value: str | None


def refusal_message(server: str, what: str) -> str:
    return (
        f"The DNS server {server} is {what}, where publishing is not allowed. Name a public "
        "DNS server, or ask staff to allow its network (MAILHOST_DNS_PUBLISH_ALLOWED_NETWORKS)."
    )


def server_address(
    server: str, *, resolver: dns.resolver.Resolver, allowed: list[Network], deadline: float
) -> str:
    """The one address this publish talks to, after checking every address `server` has."""
    try:
        addresses = [ipaddress.ip_address(server)]
    except ValueError:
        addresses = _resolve(server, resolver, deadline)
    for address in addresses:
        what = refusal(address, allowed)
        if what is not None:
            shown = what if str(address) == server else "a name for " + what
            raise TargetRefused(refusal_message(server, shown), f"{server} → {address}: {what}")
    return str(normalise(addresses[0]))


def _resolve(name: str, resolver: dns.resolver.Resolver, deadline: float) -> list:
    addresses = []
    for rdtype in ("A", "AAAA"):
        resolver.lifetime = max(deadline - time.monotonic(), 0.001)
        try:
            answer = resolver.resolve(name, rdtype, search=False)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            continue
        except dns.exception.DNSException as exc:
            raise PublishError(NO_ANSWER, f"resolving {name} {rdtype}: {exc}") from None
        addresses += [ipaddress.ip_address(rr.address) for rr in answer]
    if not addresses:
        raise TargetRefused(
            f"The DNS server name {name} does not resolve to any address.",
            f"{name}: no A or AAAA records",
        )
    return addresses


def plan(records: list[Record], *, zone: str, remove: list[tuple[str, str]]) -> PublishPlan:
    """What to change: RRsets grouped by (name, type), in-zone only; SPF handled apart."""
    grouped: dict[tuple[str, str], list[Record]] = {}
    spf_name = spf_value = None
    for record in records:
        if not in_zone(record.name, zone):
            continue
        if record.key == "spf":
            spf_name, spf_value = record.name, record.value
            continue
        grouped.setdefault((record.name, record.type), []).append(record)
    wanted = set(grouped)
    deletions = tuple(sorted(r for r in set(remove) if r not in wanted and in_zone(r[0], zone)))
    replace = tuple((name, rtype, tuple(group)) for (name, rtype), group in grouped.items())
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
    for name, rtype, group in publish_plan.replace:
        if rtype == "CNAME":
            update.delete(_absolute(name))  # a CNAME cannot live beside other data
        update.replace(_absolute(name), ttl, *[record_rdata(record) for record in group])
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
    return record_rdata(Record("", "", "TXT", value, ""))


def _absolute(name: str) -> dns.name.Name:
    return dns.name.from_text(name.rstrip(".") + ".")


def _exchange(message: dns.message.Message, address: str, port: int, deadline: float):
    """One TCP exchange with the (checked) address, within what is left of the deadline."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise PublishError(NO_ANSWER, f"{address} port {port}: the publish time limit ran out")
    try:
        return dns.query.tcp(message, address, port=port, timeout=remaining)
    except Exception as exc:  # noqa: BLE001
        if isinstance(exc, dns.tsig.PeerError) and message.keyring is not None:
            raise  # a DNS server answered and refused our signature: send() says which way
        # The peer is whatever an organisation named. Refused, reset, closed, garbage, a reply
        # that is not DNS, a timeout: whatever dnspython raises, the caller learns only that
        # no DNS answer came, so the answers cannot be used to map ports.
        detail = f"{address} port {port}: {type(exc).__name__}: {exc}"
        raise PublishError(NO_ANSWER, detail) from None


def existing_txt(target: PublishTarget, address: str, name: str, deadline: float) -> list[str]:
    """TXT strings at `name`, asked of the primary itself (a resolver's cache may be stale)."""
    query = dns.message.make_query(_absolute(name), dns.rdatatype.TXT)
    response = _exchange(query, address, target.port, deadline)
    texts = []
    for rrset in response.answer:
        if rrset.rdtype == dns.rdatatype.TXT:
            texts += [b"".join(rr.strings).decode("utf-8", "replace") for rr in rrset]
    return texts


def send(target: PublishTarget, address: str, update: dns.update.UpdateMessage, deadline: float):
    # A DNS server answered: what it said is the operator's to know (a wrong key, a zone it
    # does not serve). Only allowed addresses are ever asked, so this maps no ports.
    where = f"{address} port {target.port}"
    try:
        response = _exchange(update, address, target.port, deadline)
    except dns.tsig.PeerBadKey:
        public = f"The server does not know the TSIG key {target.key_name}."
        raise PublishError(public, f"{where}: {public}") from None
    except dns.tsig.PeerBadSignature:
        public = (f"The server rejected the TSIG signature of {target.key_name} "
                  "(wrong secret or algorithm).")
        raise PublishError(public, f"{where}: {public}") from None
    except dns.tsig.PeerError as exc:
        public = f"The server rejected the TSIG signature: {exc}."
        raise PublishError(public, f"{where}: {public}") from None
    rcode = response.rcode()
    if rcode != dns.rcode.NOERROR:
        hints = {
            dns.rcode.NOTAUTH: " (the key may not update this zone, or the server is not "
                               "authoritative for it)",
            dns.rcode.REFUSED: " (updates are not allowed for this key or zone)",
        }
        public = (f"The server answered {dns.rcode.to_text(rcode)} to the update of "
                  f"{target.zone}{hints.get(rcode, '')}.")
        raise PublishError(public, f"{where}: {public}")


def publish(
    target: PublishTarget,
    records: list[Record],
    *,
    remove: list[tuple[str, str]],
    ttl: int,
    resolver: dns.resolver.Resolver,
    allowed: list[Network],
) -> PublishPlan:
    """Publish `records` (in-zone ones) and delete `remove`, in one signed update."""
    deadline = time.monotonic() + target.timeout
    address = server_address(target.server, resolver=resolver, allowed=allowed, deadline=deadline)
    publish_plan = plan(records, zone=target.zone, remove=remove)
    current = []
    if publish_plan.spf_name:
        current = existing_txt(target, address, publish_plan.spf_name, deadline)
    send(target, address, build_update(target, publish_plan, ttl=ttl, existing_txt=current),
         deadline)
    return publish_plan
