"""Live verification of a domain's expected records: semantic and three-valued.

Each expected record (identity.records) gets a verdict: `ok`; `wrong`, with what was found;
or `unknown` when DNS did not answer (timeout, SERVFAIL, refused). Values are compared by
meaning, not by text: SPF is evaluated, DKIM keys compared after joining split strings, DMARC
and the MTA-STS policy parsed. No Django models here: input is the snapshot and the records.
"""

import contextlib
import http.client
import ipaddress
import logging
import socket
import ssl
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import dns.exception
import dns.message
import dns.name
import dns.nameserver
import dns.rcode
import dns.resolver
import dns.reversename

from identity import dmarc, mtasts, spf
from identity.addresses import Network, refusal
from identity.dkim import parse_tags
from identity.records import PostureSnap, Record, mtasts_policy

logger = logging.getLogger(__name__)

OK, WRONG, UNKNOWN = "ok", "wrong", "unknown"
POLICY_MAX_BYTES = 64 * 1024


class Unknown(Exception):
    """No usable answer: timeout, SERVFAIL, refused."""


class PolicyFetchError(Exception):
    def __init__(self, message: str, *, unknown: bool):
        super().__init__(message)
        self.unknown = unknown


PolicyFetcher = Callable[[str], str]  # domain -> policy text; raises PolicyFetchError


@dataclass(frozen=True)
class CheckResult:
    key: str
    name: str
    type: str
    status: str
    detail: str
    found: tuple[str, ...] = ()


def make_resolver(
    nameservers: list[str], *, timeout_ms: int, lifetime_ms: int
) -> dns.resolver.Resolver:
    """A resolver for `ip` or `ip@port` servers; [] means the system's (/etc/resolv.conf)."""
    if not nameservers:
        resolver = dns.resolver.Resolver()
    else:
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = [nameserver(s) for s in nameservers]
    resolver.timeout = timeout_ms / 1000
    resolver.lifetime = lifetime_ms / 1000
    resolver.cache = None
    return resolver


def nameserver(spec: str) -> dns.nameserver.Do53Nameserver:
    address, _, port = spec.strip().partition("@")
    address = address.strip("[]")
    ipaddress.ip_address(address)  # ValueError for a name: resolvers are given by address
    return dns.nameserver.Do53Nameserver(address, int(port or 53))


class DnsLookup:
    """Queries through one resolver, reduced to three outcomes: data, nothing, or Unknown."""

    def __init__(self, resolver: dns.resolver.Resolver):
        self.resolver = resolver

    def answer(self, name: str, rdtype: str) -> dns.resolver.Answer | None:
        try:
            return self.resolver.resolve(name, rdtype, search=False)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return None
        except dns.resolver.LifetimeTimeout:
            raise Unknown(f"no answer for {name} {rdtype} within the time limit") from None
        except dns.resolver.NoNameservers as exc:
            raise Unknown(f"no server answered {name} {rdtype}: {_servfail(exc)}") from None
        except dns.exception.DNSException as exc:
            raise Unknown(f"{name} {rdtype}: {exc}") from None

    def texts(self, name: str, rdtype: str) -> list[str]:
        """TXT strings joined per record; names lower case without the dot; addresses as text."""
        answer = self.answer(name, rdtype)
        if answer is None:
            return []
        if rdtype == "TXT":
            return [b"".join(rr.strings).decode("utf-8", "replace") for rr in answer]
        if rdtype == "MX":
            return [_host(rr.exchange) for rr in answer]
        if rdtype in ("PTR", "CNAME"):
            return [_host(rr.target) for rr in answer]
        return [rr.to_text() for rr in answer]

    def addresses(self, name: str, *, hops: int = 8) -> list[str]:
        """A then AAAA addresses of `name`, following CNAMEs even where an authoritative
        server answers with the alias alone (its target in another zone)."""
        for _ in range(hops):
            found = self.texts(name, "A") or self.texts(name, "AAAA")
            if found:
                return found
            alias = self.texts(name, "CNAME")
            if not alias:
                return []
            name = alias[0]
        return []

    def spf_lookup(self, name: str, rdtype: str) -> list[str]:
        try:
            return self.texts(name, rdtype)
        except Unknown as exc:
            raise spf.SpfTempError(str(exc)) from None


def _servfail(exc: dns.resolver.NoNameservers) -> str:
    errors = exc.kwargs.get("errors") or []
    return ", ".join(sorted({str(e[3]) for e in errors if len(e) > 3})) or "SERVFAIL"


def _host(name: dns.name.Name) -> str:
    return name.to_text(omit_final_dot=True).lower()


def _bare(host: str) -> str:
    return host.lower().rstrip(".")


def run_checks(
    snap: PostureSnap,
    records: list[Record],
    *,
    lookup: DnsLookup,
    fetch_policy: PolicyFetcher,
) -> list[CheckResult]:
    results = []
    for record in records:
        try:
            status, detail, found = _check(snap, record, lookup, fetch_policy)
        except Unknown as exc:
            status, detail, found = UNKNOWN, str(exc), ()
        except Exception as exc:  # one odd answer must not cost the verdicts on the others
            logger.exception("checking %s %s failed", record.type, record.name)
            status, detail, found = UNKNOWN, f"The check failed: {exc}", ()
        results.append(
            CheckResult(record.key, record.name, record.type, status, detail, tuple(found))
        )
    return results


def _check(snap, record, lookup, fetch_policy):
    key = record.key.split(":")[0]
    if key == "mta-sts-policy":
        return check_mtasts_policy(snap, fetch_policy)
    if key == "spf":
        return check_spf(snap, lookup)
    return _CHECKS[key](snap, record, lookup)


Verdict = tuple[str, str, tuple[str, ...] | list[str]]


def check_mx(snap: PostureSnap, record: Record, lookup: DnsLookup) -> Verdict:
    answer = lookup.answer(snap.domain, "MX")
    found = sorted((rr.preference, _host(rr.exchange)) for rr in answer or [])
    shown = [f"{pref} {host}." for pref, host in found]
    if not found:
        return WRONG, f"{snap.domain} has no MX record.", shown
    best = min(pref for pref, _ in found)
    preferred = {host for pref, host in found if pref == best}
    if _bare(snap.mail_host) in preferred:
        return OK, f"Mail is delivered to {snap.mail_host}.", shown
    if _bare(snap.mail_host) in {host for _, host in found}:
        better = ", ".join(sorted(preferred))
        return WRONG, f"{snap.mail_host} is listed, but {better} is preferred.", shown
    return WRONG, f"The MX points elsewhere, not to {snap.mail_host}.", shown


def sending_ips(snap: PostureSnap, lookup: DnsLookup) -> list[str]:
    """The addresses we send from: configured, else whatever the mail host resolves to."""
    if snap.ipv4 or snap.ipv6:
        return [*snap.ipv4, *snap.ipv6]
    return lookup.texts(snap.mail_host, "A") + lookup.texts(snap.mail_host, "AAAA")


def check_spf(snap: PostureSnap, lookup: DnsLookup) -> Verdict:
    found = spf.spf_records(lookup.texts(snap.domain, "TXT"))
    if not found:
        return WRONG, "There is no SPF record (TXT starting v=spf1).", found
    if len(found) > 1:
        return WRONG, f"There are {len(found)} SPF records; receivers treat that as an error.", (
            found
        )
    terms = found[0].lower().split()
    if "+all" in terms or "all" in terms:
        return WRONG, "The SPF record ends in +all: it lets anyone send as the domain.", found
    ips = sending_ips(snap, lookup)
    if not ips:
        return UNKNOWN, f"{snap.mail_host} has no address to check SPF against.", found
    for ip in ips:
        result = spf.check_host(ip, snap.domain, lookup.spf_lookup, helo=snap.mail_host)
        if result.result == "temperror":
            return UNKNOWN, f"SPF evaluation for {ip} was interrupted: {result.detail}", found
        if result.result != "pass":
            return WRONG, f"SPF does not authorise {ip}: {result.result} ({result.detail}).", found
    try:
        lookups = spf.count_lookups(snap.domain, lookup.spf_lookup)
    except spf.SpfTempError as exc:
        return UNKNOWN, f"Counting SPF lookups was interrupted: {exc}", found
    except spf.SpfPermError as exc:
        return WRONG, f"The SPF record is broken: {exc}.", found
    if lookups > spf.LOOKUP_LIMIT:
        return WRONG, (f"The SPF record needs more than {spf.LOOKUP_LIMIT} DNS lookups; "
                       f"receivers stop at {spf.LOOKUP_LIMIT} and report an error."), found
    missing = [name for name in snap.spf_includes if f"include:{name}" not in terms]
    if missing:
        return WRONG, (f"SPF does not authorise the relay this domain's mail leaves by: add "
                       f"include:{missing[0]} (receivers will fail SPF for relayed mail)."), found
    detail = f"SPF passes for {', '.join(ips)} ({lookups} of {spf.LOOKUP_LIMIT} DNS lookups)."
    if not found[0].rstrip().endswith("-all"):
        detail += " Ending with -all is recommended."
    return OK, detail, found


def check_dkim(snap: PostureSnap, record: Record, lookup: DnsLookup) -> Verdict:
    found = lookup.texts(record.name, "TXT")
    expected = parse_tags(record.value)
    if not found:
        return WRONG, f"No TXT record at {record.name}.", found
    for value in found:
        try:
            tags = parse_tags(value)
        except ValueError:
            continue
        same_key = _b64(tags.get("p", "")) == _b64(expected["p"])
        if same_key and tags.get("k", "rsa").lower() == expected["k"]:
            if tags.get("v", "DKIM1") != "DKIM1":
                return WRONG, "The key matches but v= is not DKIM1.", found
            return OK, f"The published {expected['k']} key matches the stored key.", found
    return WRONG, "The published key is not the stored key.", found


def _b64(value: str) -> str:
    return "".join(value.split())


def check_dmarc(snap: PostureSnap, record: Record, lookup: DnsLookup) -> Verdict:
    found = [v for v in lookup.texts(record.name, "TXT") if v.lower().startswith("v=dmarc1")]
    if not found:
        return WRONG, f"No DMARC record at {record.name}.", found
    if len(found) > 1:
        return WRONG, f"There are {len(found)} DMARC records; receivers ignore them all.", found
    try:
        published = dmarc.parse(found[0])
    except ValueError as exc:
        return WRONG, f"The DMARC record does not parse: {exc}.", found
    expected = dmarc.parse(record.value)
    differences = [
        f"{tag}={_show(getattr(published, attr))} (expected {_show(getattr(expected, attr))})"
        for tag, attr in _DMARC_TAGS
        if getattr(published, attr) != getattr(expected, attr)
    ]
    if differences:
        return WRONG, "DMARC differs: " + "; ".join(differences) + ".", found
    return OK, f"DMARC is as expected: p={published.policy}, pct={published.pct}.", found


_DMARC_TAGS = (("p", "policy"), ("pct", "pct"), ("rua", "rua"), ("ruf", "ruf"),
               ("adkim", "adkim"), ("aspf", "aspf"))


def _show(value) -> str:
    if isinstance(value, tuple):
        return ",".join(value) or "(none)"
    return str(value)


def check_ownership(snap: PostureSnap, record: Record, lookup: DnsLookup) -> Verdict:
    """The ownership token, among whatever else is published there (several organisations, or
    a re-verification, may leave several tokens at the name)."""
    found = lookup.texts(record.name, "TXT")
    if any(value.strip() == record.value for value in found):
        return OK, f"The verification record is published at {record.name}.", found
    if not found:
        return WRONG, f"No TXT record at {record.name} yet.", found
    return WRONG, f"{record.name} does not hold this domain's token ({record.value}).", found


def check_tag_record(snap: PostureSnap, record: Record, lookup: DnsLookup) -> Verdict:
    """MTA-STS id, TLS-RPT rua, BIMI l=: one record of the version, with the expected tags."""
    expected = parse_tags(record.value)
    version = expected["v"]
    found = [
        v for v in lookup.texts(record.name, "TXT")
        if v.replace(" ", "").lower().startswith(f"v={version.lower()}")
    ]
    if not found:
        return WRONG, f"No {version} record at {record.name}.", found
    if len(found) > 1:
        return WRONG, f"There are {len(found)} {version} records; there must be one.", found
    try:
        tags = parse_tags(found[0])
    except ValueError as exc:
        return WRONG, f"The record does not parse: {exc}.", found
    for name, value in expected.items():
        if name != "v" and _tag_norm(name, tags.get(name, "")) != _tag_norm(name, value):
            return WRONG, f"{name}={tags.get(name) or '(missing)'}, expected {name}={value}.", found
    return OK, f"{version} record as expected.", found


def _tag_norm(name: str, value: str):
    if name == "rua":
        return sorted(u.strip().lower() for u in value.split(",") if u.strip())
    return value.strip()


def check_alias(snap: PostureSnap, record: Record, lookup: DnsLookup) -> Verdict:
    """A CNAME to the expected host, or an A record with the same addresses."""
    target = _bare(record.value)
    answer = lookup.answer(record.name, "A")
    if answer is not None and _bare(answer.canonical_name.to_text()) == target:
        return OK, f"{record.name} is an alias of {target}.", [f"CNAME {target}."]
    cname = lookup.texts(record.name, "CNAME")
    if cname == [target]:
        return OK, f"{record.name} is an alias of {target}.", [f"CNAME {target}."]
    if cname:
        return WRONG, f"{record.name} is an alias of {cname[0]}, not {target}.", [
            f"CNAME {cname[0]}."
        ]
    addresses = sorted(rr.to_text() for rr in answer or [])
    shown = [f"A {a}" for a in addresses]
    if not addresses:
        return WRONG, f"{record.name} does not exist (expected CNAME {target}).", shown
    # The configured sending addresses are the mail host's; without them, what it resolves to.
    wanted = sorted(snap.ipv4) if snap.ipv4 else sorted(lookup.texts(target, "A"))
    if addresses == wanted:
        return OK, f"{record.name} has the same address as {target}.", shown
    return WRONG, f"{record.name} points to {', '.join(addresses)}, not to {target}.", shown


def check_srv(snap: PostureSnap, record: Record, lookup: DnsLookup) -> Verdict:
    _priority, _weight, port, target = record.value.split()
    answer = lookup.answer(record.name, "SRV")
    found = sorted(rr.to_text() for rr in answer or [])
    if not found:
        return WRONG, f"No SRV record at {record.name}.", found
    for rr in answer:
        if _host(rr.target) == _bare(target) and rr.port == int(port):
            return OK, f"Points to {_bare(target)} port {port}.", found
    return WRONG, f"Expected {_bare(target)} port {port}.", found


def check_address(snap: PostureSnap, record: Record, lookup: DnsLookup) -> Verdict:
    found = sorted(lookup.texts(record.name, record.type))
    if ipaddress.ip_address(record.value) in {ipaddress.ip_address(a) for a in found}:
        return OK, f"{record.name} has the address {record.value}.", found
    if not found:
        return WRONG, f"{record.name} has no {record.type} record.", found
    return WRONG, f"{record.name} does not have the address {record.value}.", found


def check_ptr(snap: PostureSnap, record: Record, lookup: DnsLookup) -> Verdict:
    ip = record.key.split(":", 1)[1]
    found = lookup.texts(record.name, "PTR")
    if not found:
        return WRONG, f"{ip} has no reverse DNS (PTR).", found
    if _bare(snap.mail_host) not in found:
        return WRONG, f"{ip} reverses to {', '.join(found)}, not {snap.mail_host}.", found
    rdtype = "A" if ipaddress.ip_address(ip).version == 4 else "AAAA"
    forward = {ipaddress.ip_address(a) for a in lookup.texts(snap.mail_host, rdtype)}
    if ipaddress.ip_address(ip) not in forward:
        return WRONG, f"{snap.mail_host} does not resolve back to {ip}.", found
    return OK, f"{ip} ⇄ {snap.mail_host} (forward-confirmed).", found


def check_mtasts_policy(snap: PostureSnap, fetch_policy: PolicyFetcher) -> Verdict:
    try:
        text = fetch_policy(snap.domain)
    except PolicyFetchError as exc:
        return (UNKNOWN if exc.unknown else WRONG), f"Fetching the policy: {exc}", ()
    shown = tuple(text.splitlines()[:12])
    try:
        policy = mtasts.parse_policy(text)
    except mtasts.PolicyError as exc:
        return WRONG, f"The served policy does not parse: {exc}.", shown
    expected = mtasts.parse_policy(mtasts_policy(snap))
    if policy != expected:
        return WRONG, (f"The served policy (mode {policy.mode}, mx {', '.join(policy.mx)}, "
                       f"max_age {policy.max_age}) is not the current one."), shown
    if not any(mtasts.mx_matches(p, snap.mail_host) for p in policy.mx):
        return WRONG, f"No mx line of the policy matches {snap.mail_host}.", shown
    if text != mtasts_policy(snap):
        return WRONG, "The policy matches in meaning, but its text (and so its id) differs.", shown
    return OK, f"The policy (mode {policy.mode}) is served and lists {snap.mail_host}.", shown


_CHECKS = {
    "verification": check_ownership,
    "mx": check_mx,
    "dkim": check_dkim,
    "dmarc": check_dmarc,
    "mta-sts": check_tag_record,
    "tls-rpt": check_tag_record,
    "bimi": check_tag_record,
    "autoconfig": check_alias,
    "autodiscover": check_alias,
    "srv": check_srv,
    "host": check_address,
    "ptr": check_ptr,
}


class _AddressedHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS to a given address, with the certificate checked against the host name."""

    def __init__(self, host: str, address: str, **kwargs):
        super().__init__(host, **kwargs)
        self.address = address
        self.cut_off = False
        self._tls: ssl.SSLSocket | None = None  # kept: the response reads it after self.close()

    def connect(self) -> None:
        sock = socket.create_connection((self.address, self.port), self.timeout)
        self.sock = self._tls = self._context.wrap_socket(sock, server_hostname=self.host)

    def cut(self) -> None:
        """End the exchange from another thread: the whole fetch has a deadline, not only each
        read (a server sending a byte a second would otherwise hold a check for ever). The TCP
        shutdown wakes the blocked read with an error; the TLS object is left to that thread."""
        self.cut_off = True
        if self._tls is not None:
            with contextlib.suppress(OSError):
                socket.socket.shutdown(self._tls, socket.SHUT_RDWR)


def https_policy_fetcher(
    *,
    lookup: DnsLookup,
    timeout_ms: int,
    port: int = 443,
    context: ssl.SSLContext | None = None,
    allowed_networks: Sequence[Network] = (),
) -> PolicyFetcher:
    """Fetch https://mta-sts.<domain>/.well-known/mta-sts.txt as a sending MTA would.

    The host is resolved through the configured resolvers like every other check. RFC 8461
    3.3: a valid certificate for the host, no redirects followed, 200 and text/plain, at most
    64 KiB, the whole exchange within `timeout_ms`. An organisation controls the name, so it
    could point it at the portal's own network: an address that is not public is refused
    before connecting (no sending MTA could fetch from it either).

    `port`, `context` (the trusted CAs) and `allowed_networks` exist for the tests, which serve
    a policy from a loopback HTTPS server with a test CA; production passes none of them.
    """

    def fetch(domain: str) -> str:
        host = mtasts.POLICY_HOST_PREFIX + domain
        url = f"https://{host}{mtasts.POLICY_PATH}"
        try:
            addresses = lookup.addresses(host)
        except Unknown as exc:
            raise PolicyFetchError(f"{url}: {exc}", unknown=True) from None
        if not addresses:
            raise PolicyFetchError(f"{host} has no address.", unknown=False)
        why = refusal(ipaddress.ip_address(addresses[0]), list(allowed_networks))
        if why is not None:
            raise PolicyFetchError(
                f"{host} resolves to {addresses[0]}, {why}: not fetched (no sending MTA could).",
                unknown=False,
            )
        connection = _AddressedHTTPSConnection(
            host,
            addresses[0],
            port=port,
            timeout=timeout_ms / 1000,
            context=context or ssl.create_default_context(),
        )
        watchdog = threading.Timer(timeout_ms / 1000, connection.cut)
        watchdog.start()
        late = PolicyFetchError(f"{url}: no complete answer within {timeout_ms} ms", unknown=True)
        try:
            connection.request("GET", mtasts.POLICY_PATH, headers={"User-Agent": "Mailhost"})
            policy = read_policy_response(connection.getresponse())
            if connection.cut_off:  # the cut can also look like a short body
                raise late
            return policy
        except (OSError, http.client.HTTPException) as exc:
            if connection.cut_off:
                raise late from None
            # A timeout or a dropped connection may pass; a refusal or a bad certificate won't.
            transient = (TimeoutError, ConnectionResetError, http.client.RemoteDisconnected)
            raise PolicyFetchError(f"{url}: {exc}", unknown=isinstance(exc, transient)) from None
        finally:
            watchdog.cancel()
            connection.close()

    return fetch


def read_policy_response(response: http.client.HTTPResponse) -> str:
    body = response.read(POLICY_MAX_BYTES + 1)
    return policy_from_response(response.status, response.getheader("Content-Type", ""), body)


def policy_from_response(status: int, content_type: str, body: bytes) -> str:
    """The policy body, or PolicyFetchError for what a sending MTA would refuse."""
    if status != 200:
        raise PolicyFetchError(f"HTTP {status} (redirects are not followed)", unknown=False)
    if content_type.split(";")[0].strip().lower() != "text/plain":
        raise PolicyFetchError(
            f"served as {content_type or '(no type)'}, not text/plain", unknown=False
        )
    if len(body) > POLICY_MAX_BYTES:
        raise PolicyFetchError("larger than 64 KiB", unknown=False)
    return body.decode("utf-8", "replace")
