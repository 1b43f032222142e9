"""Reading DMARC aggregate (RFC 7489 appendix C, DMARCbis), DMARC failure (RFC 6591 ARF) and
SMTP TLS (RFC 8460) reports out of whatever carried them. Pure: bytes in, dataclasses out.

Everything here treats its input as hostile. Decompression streams through a byte cap (a zip
bomb stops at the cap, it is never inflated first and measured after), XML goes through
defusedxml with DTDs forbidden (no entity expansion, no external fetches) and is read with
`iterparse`, so an aggregate report's records are yielded one at a time and never held
together; a limit on records, archive members and MIME depth bounds the rest. Any problem is a
`Rejected` with a sentence saying what was wrong: the caller records it and stores nothing.

Why not parsedmarc: its parsing functions sit in one package with its IMAP, Elasticsearch,
OpenSearch, Kafka, S3, Splunk, Microsoft Graph and Gmail clients, whose dependencies it installs
unconditionally (dozens of packages), and it reads a whole report into memory before parsing.
The formats are small; this module is the part of it we need, with limits it lacks.
"""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import email.utils
import gzip
import io
import ipaddress
import json
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import Message
from xml.etree.ElementTree import ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import iterparse


class Rejected(Exception):
    """The input is not a report we accept; `str()` says why, for the operator."""


@dataclass(frozen=True)
class Limits:
    max_bytes: int = 8 * 1024 * 1024  # what was received (message or upload)
    max_uncompressed: int = 25 * 1024 * 1024  # one report after decompression
    max_records: int = 50_000  # rows of one aggregate report
    max_parts: int = 10  # reports (attachments, archive members) in one submission
    max_depth: int = 3  # message/rfc822 inside message inside ...


# --- what comes out ----------------------------------------------------------------------------


@dataclass(frozen=True)
class AuthResult:
    domain: str
    result: str
    selector: str = ""  # DKIM
    scope: str = ""  # SPF: mfrom or helo


@dataclass(frozen=True)
class AggregateRecord:
    source_ip: str
    count: int
    disposition: str  # none / quarantine / reject (DMARCbis: also pass)
    dkim_aligned: bool  # policy_evaluated dkim = pass
    spf_aligned: bool
    header_from: str
    envelope_from: str
    dkim: tuple[AuthResult, ...]
    spf: tuple[AuthResult, ...]
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class AggregateMeta:
    org_name: str
    org_email: str
    report_id: str
    begin: dt.datetime
    end: dt.datetime
    domain: str  # policy_published/domain: whose report this is
    policy: str
    subdomain_policy: str
    pct: int | None
    adkim: str
    aspf: str
    version: str  # "" for RFC 7489 reports, "1.0"/"2.0" where given; DMARCbis has a namespace


@dataclass
class AggregateReport:
    """Metadata at once, records as a one-shot iterator (read it once, in order)."""

    meta: AggregateMeta
    records: Iterator[AggregateRecord]
    kind: str = "dmarc-aggregate"


@dataclass(frozen=True)
class FailureReport:
    """One RFC 6591 auth-failure report, minimised: no local parts, no body, a few headers."""

    domain: str  # Reported-Domain
    feedback_type: str
    auth_failure: str
    source_ip: str
    arrival: dt.datetime | None
    reporter: str  # User-Agent of the reporting receiver
    header_from_domain: str
    envelope_from_domain: str
    dkim_domain: str
    authentication_results: str
    subject: str
    kind: str = "dmarc-failure"


@dataclass(frozen=True)
class TlsFailure:
    result_type: str
    sending_mta_ip: str
    receiving_mx: str
    count: int


@dataclass(frozen=True)
class TlsPolicy:
    policy_type: str  # sts / tlsa / no-policy-found
    policy_domain: str
    mx_host: str
    successes: int
    failures: int
    failure_details: tuple[TlsFailure, ...]


@dataclass(frozen=True)
class TlsReport:
    org_name: str
    contact: str
    report_id: str
    begin: dt.datetime
    end: dt.datetime
    domain: str
    policies: tuple[TlsPolicy, ...] = field(default=())
    kind: str = "tls"


Report = AggregateReport | FailureReport | TlsReport


# --- bounded reading ---------------------------------------------------------------------------


class Capped(io.RawIOBase):
    """A read-only stream that refuses to yield more than `cap` bytes of `inner`."""

    def __init__(self, inner, cap: int, what: str):
        self.inner, self.cap, self.what, self.seen = inner, cap, what, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        try:
            chunk = self.inner.read(min(len(buffer), 64 * 1024))
        except (OSError, EOFError, zlib.error, zipfile.BadZipFile) as exc:
            raise Rejected(f"The {self.what} is damaged ({exc}).") from None
        self.seen += len(chunk)
        if self.seen > self.cap:
            raise Rejected(f"The {self.what} is larger than {self.cap} bytes uncompressed.")
        buffer[: len(chunk)] = chunk
        return len(chunk)


def read_capped(stream, cap: int, what: str) -> bytes:
    return io.BufferedReader(Capped(stream, cap, what)).read()


# --- taking a submission apart -----------------------------------------------------------------

GZIP_MAGIC = b"\x1f\x8b"
ZIP_MAGIC = b"PK\x03\x04"


def read_submission(stream, limits: Limits = Limits()) -> bytes:
    """At most `max_bytes + 1` bytes of a binary stream: enough to tell that it is too large
    without ever holding more (a 50 MB upload costs `max_bytes` of memory, not 50 MB)."""
    return stream.read(limits.max_bytes + 1)


def reports_in(data: bytes, limits: Limits = Limits()) -> list[Report]:
    """Every report in one submission: a report file (xml, json, gzip, zip) or a mail message
    carrying them as attachments, possibly inside a forwarded message. Raises `Rejected`.

    Aggregate reports are returned with their records still unread: iterate them (each may
    still raise `Rejected`) before the next submission's data is dropped."""
    if len(data) > limits.max_bytes:
        raise Rejected(f"The submission is larger than {limits.max_bytes} bytes.")
    found: list[Report] = []
    _unpack(data, "submission", limits, found, depth=0)
    if not found:
        raise Rejected("No DMARC or TLS report was found in it.")
    return found


def _add(found: list, report: Report, limits: Limits) -> None:
    if len(found) >= limits.max_parts:
        raise Rejected(f"It holds more than {limits.max_parts} reports.")
    found.append(report)


def _unpack(data: bytes, what: str, limits: Limits, found: list, *, depth: int) -> None:
    head = data[:512].lstrip()
    if data.startswith(GZIP_MAGIC):
        inner = read_capped(gzip.GzipFile(fileobj=io.BytesIO(data)), limits.max_uncompressed,
                            f"gzip {what}")
        if inner.startswith((GZIP_MAGIC, ZIP_MAGIC)):
            raise Rejected(f"The gzip {what} holds another archive.")
        _unpack(inner, what, limits, found, depth=depth)
    elif data.startswith(ZIP_MAGIC):
        _unzip(data, what, limits, found, depth=depth)
    elif head.startswith(b"<"):
        _add(found, parse_aggregate(io.BytesIO(data), limits), limits)
    elif head.startswith(b"{"):
        _add(found, parse_tls(data), limits)
    elif depth < limits.max_depth and _looks_like_message(head):
        _unpack_message(email.message_from_bytes(data, policy=email.policy.compat32), limits,
                        found, depth=depth + 1)
    else:
        raise Rejected(f"The {what} is not XML, JSON, gzip, zip or a mail message.")


def _unzip(data: bytes, what: str, limits: Limits, found: list, *, depth: int) -> None:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        members = [m for m in archive.infolist() if not m.is_dir()]
    except (zipfile.BadZipFile, ValueError) as exc:
        raise Rejected(f"The zip {what} is damaged ({exc}).") from None
    if not members or len(members) > limits.max_parts:
        raise Rejected(f"The zip {what} holds {len(members)} files, not 1 to {limits.max_parts}.")
    for member in members:
        try:
            stream = archive.open(member)
        except (zipfile.BadZipFile, NotImplementedError, RuntimeError) as exc:
            raise Rejected(f"The zip {what} cannot be read ({exc}).") from None
        inner = read_capped(stream, limits.max_uncompressed, f"zip {what}")
        if inner.startswith((GZIP_MAGIC, ZIP_MAGIC)):
            raise Rejected(f"The zip {what} holds another archive.")
        _unpack(inner, what, limits, found, depth=depth)


def _looks_like_message(head: bytes) -> bool:
    first = head.split(b"\n", 1)[0]
    name, colon, _ = first.partition(b":")
    return bool(colon) and name.strip().replace(b"-", b"").isalnum()


REPORT_TYPES = {
    "application/gzip", "application/x-gzip", "application/zip", "application/x-zip-compressed",
    "application/xml", "text/xml", "application/tlsrpt+gzip", "application/tlsrpt+json",
    "application/json", "application/octet-stream",
}


def _unpack_message(message: Message, limits: Limits, found: list, *, depth: int) -> None:
    """A report message, or any message carrying reports: attachments, and messages forwarded
    as message/rfc822 (each level counts against max_depth)."""
    kind = message.get_content_type()
    if kind == "multipart/report" and message.get_param(
        "report-type", "", header="content-type"
    ).lower() == "feedback-report":
        _add(found, parse_failure(message), limits)
        return
    if kind == "message/rfc822":
        inner = message.get_payload()
        if isinstance(inner, list) and inner:
            if depth >= limits.max_depth:
                raise Rejected("The message nests forwarded messages too deeply.")
            _unpack_message(inner[0], limits, found, depth=depth + 1)
    elif message.is_multipart():
        for part in message.get_payload()[: 4 * limits.max_parts]:
            _unpack_message(part, limits, found, depth=depth)
    elif kind in REPORT_TYPES or message.get_filename():
        payload = message.get_payload(decode=True)
        if payload:
            _unpack(payload, f"attachment {_short(message.get_filename() or kind)}", limits,
                    found, depth=depth)


def _short(text: str) -> str:
    return repr(text[:80])


# --- DMARC aggregate ---------------------------------------------------------------------------


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]  # DMARCbis: {urn:ietf:params:xml:ns:dmarc-2.0}feedback


def _text(element, path: str, *, limit: int = 255) -> str:
    node = element
    for step in path.split("/"):
        node = next((c for c in node if _local(c.tag) == step), None)
        if node is None:
            return ""
    value = (node.text or "").strip()
    if len(value) > limit or any(ord(ch) < 32 for ch in value):
        raise Rejected(f"<{path}> is longer than {limit} characters or holds control characters.")
    return value


def _int(value: str, what: str, *, maximum: int = 2**31 - 1) -> int:
    if not value.isdigit() or int(value) > maximum:
        raise Rejected(f"<{what}> is {value[:40]!r}, not a whole number up to {maximum}.")
    return int(value)


def _epoch(value: str, what: str) -> dt.datetime:
    return dt.datetime.fromtimestamp(_int(value, what, maximum=2**40), tz=dt.UTC)


def _domain(value: str, what: str) -> str:
    name = value.strip().rstrip(".").lower()
    try:
        name = name.encode("idna").decode("ascii") if name else ""
    except UnicodeError:
        name = ""
    if not name or len(name) > 253 or "." not in name:
        raise Rejected(f"{what} {value[:80]!r} is not a domain name.")
    return name


def _ip(value: str, what: str) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise Rejected(f"{what} {value[:60]!r} is not an IP address.") from None


def parse_aggregate(stream, limits: Limits = Limits()) -> AggregateReport:
    """An aggregate report from an XML byte stream: metadata now, records as they are read."""
    events = _xml_events(stream)
    meta_parts: dict = {}
    element, root = next(events, (None, None))
    while element is not None and _local(element.tag) != "record":
        meta_parts[_local(element.tag)] = element
        element, root = next(events, (None, None))
    if "report_metadata" not in meta_parts or "policy_published" not in meta_parts:
        raise Rejected("It is not a DMARC aggregate report: report_metadata or "
                       "policy_published is missing (or comes after the records).")
    meta = _meta(meta_parts)
    return AggregateReport(meta=meta, records=_records(element, root, events, limits))


def _xml_events(stream):
    """(element, root) at the end of each direct child of <feedback>; defusedxml, no DTDs."""
    depth, root = 0, None
    try:
        for event, element in iterparse(stream, events=("start", "end"), forbid_dtd=True):
            if event == "start":
                if depth == 0:
                    root = element
                    if _local(element.tag) != "feedback":
                        raise Rejected(f"The XML is <{_local(element.tag)[:40]}>, not a DMARC "
                                       "<feedback> report.")
                depth += 1
                continue
            depth -= 1
            if depth == 1:
                yield element, root
    except DefusedXmlException as exc:
        raise Rejected(f"The XML declares a DTD or entities, which reports never need ({exc}).")\
            from None
    except ParseError as exc:
        raise Rejected(f"The XML is malformed or not UTF-8 ({exc}).") from None


def _meta(parts: dict) -> AggregateMeta:
    metadata, published = parts["report_metadata"], parts["policy_published"]
    pct = _text(published, "pct")
    version = parts.get("version")
    return AggregateMeta(
        org_name=_text(metadata, "org_name") or "(unnamed)",
        org_email=_text(metadata, "email"),
        report_id=_required(_text(metadata, "report_id"), "report_metadata/report_id"),
        begin=_epoch(_text(metadata, "date_range/begin"), "date_range/begin"),
        end=_epoch(_text(metadata, "date_range/end"), "date_range/end"),
        domain=_domain(_text(published, "domain"), "policy_published/domain"),
        policy=_text(published, "p", limit=20).lower(),
        subdomain_policy=_text(published, "sp", limit=20).lower(),
        pct=_int(pct, "pct", maximum=100) if pct else None,
        adkim=_text(published, "adkim", limit=2).lower() or "r",
        aspf=_text(published, "aspf", limit=2).lower() or "r",
        version=(version.text or "").strip()[:10] if version is not None else "",
    )


def _required(value: str, what: str) -> str:
    if not value:
        raise Rejected(f"<{what}> is missing.")
    return value


def _records(first, root, events, limits: Limits) -> Iterator[AggregateRecord]:
    count = 0
    element = first
    while element is not None:
        if _local(element.tag) == "record":
            count += 1
            if count > limits.max_records:
                raise Rejected(f"It has more than {limits.max_records} records.")
            yield _record(element)
        root.remove(element)  # keep memory flat: each record is dropped once read
        element = next(events, (None, None))[0]


def _record(record) -> AggregateRecord:
    row = next((c for c in record if _local(c.tag) == "row"), None)
    if row is None:
        raise Rejected("A <record> has no <row>.")
    auth = next((c for c in record if _local(c.tag) == "auth_results"), None)
    dkim, spf = [], []
    for result in auth if auth is not None else ():
        name = _local(result.tag)
        if name == "dkim":
            dkim.append(AuthResult(domain=_text(result, "domain").lower(),
                                   result=_text(result, "result", limit=20).lower(),
                                   selector=_text(result, "selector", limit=63)))
        elif name == "spf":
            spf.append(AuthResult(domain=_text(result, "domain").lower(),
                                  result=_text(result, "result", limit=20).lower(),
                                  scope=_text(result, "scope", limit=10).lower()))
    reasons = tuple(_text(r, "type", limit=40) for r in row.iter() if _local(r.tag) == "reason")
    return AggregateRecord(
        source_ip=_ip(_text(row, "source_ip", limit=64), "source_ip"),
        count=_int(_text(row, "count"), "count"),
        disposition=_text(row, "policy_evaluated/disposition", limit=20).lower(),
        dkim_aligned=_text(row, "policy_evaluated/dkim", limit=20).lower() == "pass",
        spf_aligned=_text(row, "policy_evaluated/spf", limit=20).lower() == "pass",
        header_from=_text(record, "identifiers/header_from").lower(),
        envelope_from=_text(record, "identifiers/envelope_from").lower(),
        dkim=tuple(dkim[:10]),
        spf=tuple(spf[:10]),
        reasons=reasons[:10],
    )


# --- SMTP TLS reports (RFC 8460 section 4) -----------------------------------------------------


def parse_tls(data: bytes) -> TlsReport:
    try:
        body = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise Rejected(f"The JSON is not UTF-8 ({exc}).") from None
    except (ValueError, RecursionError) as exc:
        raise Rejected(f"The JSON is malformed ({str(exc)[:120]}).") from None
    if not isinstance(body, dict) or not isinstance(body.get("policies"), list):
        raise Rejected("It is not an SMTP TLS report: it has no \"policies\" list.")
    dates = body.get("date-range") if isinstance(body.get("date-range"), dict) else {}
    policies = tuple(_tls_policy(p) for p in body["policies"][:100])
    domains = {p.policy_domain for p in policies}
    if len(domains) != 1:
        raise Rejected(f"It covers {len(domains)} policy domains; a report covers one.")
    return TlsReport(
        org_name=_string(body, "organization-name") or "(unnamed)",
        contact=_string(body, "contact-info"),
        report_id=_string(body, "report-id", required=True),
        begin=_iso(_string(body_or(dates), "start-datetime", required=True)),
        end=_iso(_string(body_or(dates), "end-datetime", required=True)),
        domain=domains.pop(),
        policies=policies,
    )


def body_or(value) -> dict:
    return value if isinstance(value, dict) else {}


def _string(obj: dict, key: str, *, required: bool = False, limit: int = 255) -> str:
    value = obj.get(key, "")
    if not isinstance(value, str) or len(value) > limit or any(ord(c) < 32 for c in value):
        raise Rejected(f"\"{key}\" is not a line of text up to {limit} characters.")
    if required and not value.strip():
        raise Rejected(f"\"{key}\" is missing.")
    return value.strip()


def _count(obj: dict, key: str) -> int:
    value = obj.get(key, 0)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**31:
        raise Rejected(f"\"{key}\" is not a count.")
    return value


def _iso(value: str) -> dt.datetime:
    try:
        when = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise Rejected(f"{value[:40]!r} is not an RFC 3339 date-time.") from None
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


def _tls_policy(item) -> TlsPolicy:
    item = body_or(item)
    policy, summary = body_or(item.get("policy")), body_or(item.get("summary"))
    details = item.get("failure-details", [])
    if not isinstance(details, list):
        raise Rejected("\"failure-details\" is not a list.")
    failures = tuple(
        TlsFailure(
            result_type=_string(body_or(d), "result-type", required=True, limit=64),
            sending_mta_ip=_ip(_string(body_or(d), "sending-mta-ip"), "sending-mta-ip")
            if body_or(d).get("sending-mta-ip") else "",
            receiving_mx=_string(body_or(d), "receiving-mx-hostname"),
            count=_count(body_or(d), "failed-session-count"),
        )
        for d in details[:200]
    )
    return TlsPolicy(
        policy_type=_string(policy, "policy-type", required=True, limit=32),
        policy_domain=_domain(_string(policy, "policy-domain", required=True), "policy-domain"),
        mx_host=_string(policy, "mx-host") if isinstance(policy.get("mx-host"), str) else "",
        successes=_count(summary, "total-successful-session-count"),
        failures=_count(summary, "total-failure-session-count"),
        failure_details=failures,
    )


# --- DMARC failure reports (RFC 6591, ARF) -----------------------------------------------------


def parse_failure(message: Message) -> FailureReport:
    fields = next((p for p in message.walk()
                   if p.get_content_type() == "message/feedback-report"), None)
    if fields is None:
        raise Rejected("The feedback report has no message/feedback-report part.")
    values = _feedback_fields(fields)
    original = _original_headers(message)
    domain = values.get("reported-domain", "")
    return FailureReport(
        domain=_domain(domain, "Reported-Domain"),
        feedback_type=values.get("feedback-type", "")[:32].lower(),
        auth_failure=values.get("auth-failure", "")[:32].lower(),
        source_ip=_ip(values["source-ip"], "Source-IP") if values.get("source-ip") else "",
        arrival=_mail_date(values.get("arrival-date", "")),
        reporter=values.get("user-agent", "")[:120],
        header_from_domain=_address_domain(original.get("from", "")),
        envelope_from_domain=_address_domain(values.get("original-mail-from", "")),
        dkim_domain=values.get("dkim-domain", "")[:253].lower(),
        authentication_results=(values.get("authentication-results", "")
                                or original.get("authentication-results", ""))[:1000],
        subject=original.get("subject", "")[:200],
    )


def _feedback_fields(part: Message) -> dict[str, str]:
    """message/feedback-report is a header block; the email package gives it as a payload."""
    payload = part.get_payload()
    if isinstance(payload, list):  # parsed as a message with headers
        items = [item for sub in payload for item in sub.items()]
    else:
        items = email.message_from_string(str(payload)).items()
    return {name.lower(): " ".join(str(value).split()) for name, value in items}


def _original_headers(message: Message) -> dict[str, str]:
    for part in message.walk():
        kind = part.get_content_type()
        if kind == "message/rfc822":
            inner = part.get_payload()
            if isinstance(inner, list) and inner:
                return {k.lower(): " ".join(str(v).split()) for k, v in inner[0].items()}
        if kind == "text/rfc822-headers":
            headers = email.message_from_string(str(part.get_payload()))
            return {k.lower(): " ".join(str(v).split()) for k, v in headers.items()}
    return {}


def _address_domain(value: str) -> str:
    """Only the domain of an address: the local part is personal data we do not keep."""
    _, address = email.utils.parseaddr(value)
    return address.rpartition("@")[2].strip("<> ").lower()[:253]


def _mail_date(value: str) -> dt.datetime | None:
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)
