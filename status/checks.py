"""The status page's checks. Each gives a three-valued verdict (ok / problem / unknown) and the
evidence it rests on; none writes anything (status.services stores and alerts).

Two kinds, run in two places:
- node checks read the mail node's own state directory (daemons' pid files, Postfix's queue,
  disk use, the TLS certificate), so they run on the node's queue (status.tasks.check_node);
- portal checks ask the database and DNS: reconcile lag, the mail host's DNS (A/AAAA, PTR
  forward-confirmed), DNSBL listings of every sending IP, each domain's record verdicts.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import os
import shutil
import socket
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import dns.reversename
from cryptography import x509
from django.conf import settings

from identity.models import CheckStatus, DnsCheck
from identity.verify import DnsLookup, Unknown
from mailboxes.models import Domain
from mailboxes.selectors import live_domain_q
from mailhost.backend.config import NodeConfig
from mailhost.backend.stack import Stack
from nodes.health import node_state
from nodes.models import MailNode
from reports.rdns import forward_confirmed
from routing.queue import Queued
from status.models import State

QUEUE_DIRS = ("maildrop", "incoming", "active", "deferred", "hold")
DISK_SAMPLES = 96  # kept per volume for the forecast
FORECAST_MIN_SPAN = dt.timedelta(hours=1)  # growth measured over less is noise
PARTS_INTERVAL = dt.timedelta(hours=1)  # what grows: the state directory's parts, hourly
PARTS_SAMPLES = 24
PARTS_WALK_BUDGET = 200_000  # files and directories walked per part at most
STATE_PARTS = ("mail", "spool", "log", "reports", "rspamd", "lookup", "bans", "lib", "inbound")
# Known blocklists' removal pages ({ip} is filled in); others link to their zone's site.
REMOVAL_PAGES = {
    "zen.spamhaus.org": "https://check.spamhaus.org/results/?query={ip}",
    "bl.spamcop.net": "https://www.spamcop.net/bl.shtml?{ip}",
    "b.barracudacentral.org": "https://www.barracudacentral.org/rbl/removal-request/{ip}",
}
# DNSBLs answer 127.255.255.x for "refused" (a public resolver, over quota): not a listing.
DNSBL_ERRORS = ipaddress.ip_network("127.255.255.0/24")


@dataclass(frozen=True)
class Result:
    key: str
    group: str
    title: str
    state: str
    evidence: str
    link: str = ""
    organisation_id: int | None = None
    data: dict = field(default_factory=dict)


# --- on the node ------------------------------------------------------------------------------

def node_results(node_name: str, cfg: NodeConfig, *, previous: dict[str, dict],
                 now: dt.datetime) -> list[Result]:
    """Every check of one node; `previous` holds each check's stored data (by key)."""
    prefix = f"node:{node_name}"
    results = [
        Result(f"{prefix}:daemon:{daemon}", "daemons", f"{node_name}: {daemon}",
               State.OK if pid else State.PROBLEM,
               f"Running (pid {pid})." if pid else "Not running.")
        for daemon, pid in Stack(cfg).status().items()
    ]
    results.append(queue_result(prefix, node_name, cfg.path("spool"), now=now))
    seen_devices = set()
    for label, path in (("state", cfg.state_dir), ("mail", cfg.mail_root)):
        try:
            device = path.stat().st_dev
        except OSError:
            device = None
        if device is not None and device in seen_devices:
            continue  # the same volume
        seen_devices.add(device)
        key = f"{prefix}:disk:{label}"
        parts = {name: cfg.path(name) for name in STATE_PARTS if cfg.path(name).is_dir()}
        if label == "mail":
            parts = {"mail": path}
        results.append(disk_result(key, f"{node_name}: disk ({label}: {path})", path,
                                   previous.get(key, {}), now=now, parts=parts))
    cert = cfg.path("tls/cert.pem")
    if cert.exists():
        results.append(certificate_result(f"{prefix}:tls", f"{node_name}: TLS certificate",
                                          cert, now=now))
    return results


def queue_result(prefix: str, node_name: str, spool: Path, *, now: dt.datetime) -> Result:
    title = f"{node_name}: mail queue"
    count, oldest = 0, None
    queues = dict.fromkeys(QUEUE_DIRS, 0)
    try:
        for name in QUEUE_DIRS:
            for root, _dirs, files in os.walk(spool / name, onerror=_raise):
                for file in files:
                    mtime = os.stat(os.path.join(root, file)).st_mtime
                    count += 1
                    queues[name] += 1
                    oldest = mtime if oldest is None else min(oldest, mtime)
    except OSError as exc:
        return Result(f"{prefix}:queue", "queue", title, State.UNKNOWN,
                      f"The queue could not be read: {exc.strerror or exc}.")
    if not count:
        return Result(f"{prefix}:queue", "queue", title, State.OK, "Empty.",
                      data={"size": 0, "oldest_seconds": 0, "queues": queues})
    age = max(0, int(now.timestamp() - oldest))
    evidence = f"{count} message{'s' if count != 1 else ''}; the oldest has waited {_age(age)}."
    too_old = age > settings.MAILHOST_STATUS_QUEUE_MAX_AGE_HOURS * 3600
    too_big = count > settings.MAILHOST_STATUS_QUEUE_MAX_SIZE
    state = State.PROBLEM if too_old or too_big else State.OK
    return Result(f"{prefix}:queue", "queue", title, state, evidence,
                  data={"size": count, "oldest_seconds": age, "queues": queues})


def deferred_results(node_name: str, items: list[Queued] | None, *, stored: dict[str, int],
                     names: dict[int, str], now: dt.datetime) -> list[Result]:
    """The deferred queue of one node, and of each organisation with mail in it (or with a
    stored verdict, so a cleared queue says so): a problem past MAILHOST_QUEUE_ALERT_DEFERRED
    messages or once one has waited MAILHOST_QUEUE_ALERT_AGE_HOURS. `items` None: the queue
    could not be read. `stored`: {key: organisation id} of this node's stored per-org checks."""
    key, title = f"node:{node_name}:deferred", f"{node_name}: deferred mail"
    if items is None:
        return [Result(key, "queue", title, State.UNKNOWN, "The queue could not be read.")]
    deferred = [i for i in items if i.entry.queue == "deferred"]
    results = [_deferred_result(key, title, deferred, now=now)]
    by_org: dict[int, list[Queued]] = defaultdict(list)
    for item in deferred:
        if item.organisation_id is not None:
            by_org[item.organisation_id].append(item)
    for org_id in set(by_org) | set(stored.values()):
        org_key = f"org:{org_id}:deferred:{node_name}"
        results.append(_deferred_result(
            org_key, f"{names.get(org_id, org_id)}: deferred mail on {node_name}",
            by_org.get(org_id, []), now=now, organisation_id=org_id))
    return results


def _deferred_result(key: str, title: str, items: list[Queued], *, now: dt.datetime,
                     organisation_id: int | None = None) -> Result:
    if not items:
        return Result(key, "queue", title, State.OK, "No deferred mail.",
                      organisation_id=organisation_id, data={"deferred": 0})
    oldest = max(0, int(now.timestamp()) - min(i.entry.arrival for i in items))
    reason = next((i.entry.reason for i in items if i.entry.reason), "")
    evidence = (f"{len(items)} deferred message{'s' if len(items) != 1 else ''}; the oldest has "
                f"waited {_age(oldest)}." + (f" Last reason: {reason}" if reason else ""))
    too_many = len(items) > settings.MAILHOST_QUEUE_ALERT_DEFERRED
    too_old = oldest >= settings.MAILHOST_QUEUE_ALERT_AGE_HOURS * 3600
    return Result(key, "queue", title, State.PROBLEM if too_many or too_old else State.OK,
                  evidence, organisation_id=organisation_id,
                  data={"deferred": len(items), "oldest_seconds": oldest})


def _raise(exc: OSError) -> None:
    if not isinstance(exc, FileNotFoundError):
        raise exc


def disk_result(key: str, title: str, path: Path, previous: dict, *, now: dt.datetime,
                parts: dict[str, Path] | None = None) -> Result:
    """Use of the volume holding `path`, when it fills at the recent rate of growth, and which
    of `parts` (directories on it) grows most. Parts are measured at most hourly."""
    try:
        usage = shutil.disk_usage(path)
    except OSError as exc:
        return Result(key, "disk", title, State.UNKNOWN,
                      f"Disk use could not be read: {exc.strerror or exc}.",
                      data=previous)
    samples = [*previous.get("samples", []), [int(now.timestamp()), usage.used]][-DISK_SAMPLES:]
    percent = 100 * usage.used / usage.total if usage.total else 0.0
    evidence = (f"{percent:.0f} % used ({_bytes(usage.used)} of {_bytes(usage.total)}, "
                f"{_bytes(usage.free)} free)")
    days_left = None
    (first_at, first_used), (last_at, last_used) = samples[0], samples[-1]
    if last_at - first_at >= FORECAST_MIN_SPAN.total_seconds() and last_used > first_used:
        per_day = (last_used - first_used) / (last_at - first_at) * 86400
        days_left = usage.free / per_day
        evidence += f"; growing {_bytes(per_day)} a day: full in about {days_left:.1f} days"
    history = _part_history(previous.get("parts", []), parts or {}, now)
    if growth := _fastest_growing(history):
        evidence += f"; growing most: {growth[0]} (+{_bytes(growth[1])} in {_age(growth[2])})"
    state = State.OK
    if percent >= settings.MAILHOST_STATUS_DISK_PERCENT or (
        days_left is not None and days_left < settings.MAILHOST_STATUS_DISK_FORECAST_DAYS
    ):
        state = State.PROBLEM
    return Result(key, "disk", title, state, evidence + ".",
                  data={"samples": samples, "percent": round(percent, 1),
                        "days_left": days_left, "parts": history})


def _part_history(history: list, parts: dict[str, Path], now: dt.datetime) -> list:
    """[[time, {part: bytes}], …]: a new measurement when the last is an hour old."""
    stamp = int(now.timestamp())
    if not parts or (history and stamp - history[-1][0] < PARTS_INTERVAL.total_seconds()):
        return history
    sizes = {name: size for name, path in parts.items()
             if (size := _tree_size(path)) is not None}
    return [*history, [stamp, sizes]][-PARTS_SAMPLES:]


def _fastest_growing(history: list) -> tuple[str, int, int] | None:
    """(part, bytes grown, over seconds) of the part that grew most, if any grew."""
    if len(history) < 2:
        return None
    (first_at, first), (last_at, last) = history[0], history[-1]
    grown = {name: last[name] - first[name] for name in last if name in first}
    name = max(grown, key=grown.get, default=None)
    if name is None or grown[name] <= 0:
        return None
    return name, grown[name], last_at - first_at


def _tree_size(path: Path) -> int | None:
    """Bytes allocated below `path`; None when unreadable or larger than the walk budget
    (a big mail root is left to the volume figures rather than walked every hour)."""
    total, entries = 0, 0
    try:
        for root, dirs, files in os.walk(path, onerror=_raise):
            for name in (*dirs, *files):
                entries += 1
                if entries > PARTS_WALK_BUDGET:
                    return None
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
    except OSError:
        return None
    return total


def certificate_result(key: str, title: str, path: Path, *, now: dt.datetime) -> Result:
    try:
        cert = x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError) as exc:
        return Result(key, "tls", title, State.UNKNOWN,
                      f"The certificate could not be read: {exc}.")
    expires = cert.not_valid_after_utc
    days = (expires - now).total_seconds() / 86400
    subject = cert.subject.rfc4514_string()
    if days <= 0:
        return Result(key, "tls", title, State.PROBLEM,
                      f"{subject} expired on {expires:%Y-%m-%d %H:%M} UTC.")
    evidence = f"{subject} expires on {expires:%Y-%m-%d} (in {days:.0f} days)."
    state = State.PROBLEM if days < settings.MAILHOST_STATUS_CERT_WARN_DAYS else State.OK
    return Result(key, "tls", title, state, evidence, data={"days_left": round(days, 1)})


# --- in the portal ----------------------------------------------------------------------------

def reconcile_results(now: dt.datetime) -> list[Result]:
    results = []
    for node in MailNode.objects.order_by("name"):
        view = node_state(node, now)
        results.append(Result(
            f"node:{node.name}:reconcile", "reconcile", f"{node.name}: reconcile",
            State.OK if view["ok"] else State.PROBLEM,
            f"{view['detail']} {view['lag']} change{'s' if view['lag'] != 1 else ''} waiting.",
            data={"lag": view["lag"]}))
    return results


NODE_PROBE_SECONDS = 5.0  # a node's MX listener greets within this, or it counts as down


def smtp_greeting(host: str, port: int, timeout: float = NODE_PROBE_SECONDS) -> str:
    """The first line a node's MX listener sends ("220 …"); OSError when none comes. Only the
    greeting, then QUIT: no HELO, so the probe never counts as a client that sent mail."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        line = sock.makefile("rb").readline(512).decode("ascii", "replace").strip()
        with contextlib.suppress(OSError):
            sock.sendall(b"QUIT\r\n")
    if not line.startswith("220"):
        raise OSError(f"greeted with {line[:80]!r}" if line else "closed without a greeting")
    return line


def node_reach_results(greeting=smtp_greeting) -> list[Result]:
    """From the portal: does each node's MX listener (MailNode.smtp_host/smtp_port, where the
    other nodes deliver) answer? A node that does not is down for mail, and the evidence
    names exactly the domains it hosts. Nodes without an address are not probed."""
    results = []
    hosted = defaultdict(list)
    for node_id, name in Domain.objects.order_by("name").values_list("node_id", "name"):
        hosted[node_id].append(name)
    for node in MailNode.objects.exclude(smtp_host="").order_by("name"):
        domains = hosted[node.pk]
        key, title = f"reach:{node.name}", f"{node.name}: SMTP"
        where = f"{node.smtp_host}:{node.smtp_port}"
        try:
            greeting(node.smtp_host, node.smtp_port)
        except OSError as exc:
            named = ", ".join(domains) if domains else "none"
            results.append(Result(
                key, "nodes", title, State.PROBLEM,
                f"{node.name} does not answer SMTP at {where} ({exc or type(exc).__name__}). "
                f"Domains affected ({len(domains)}): {named}.",
                data={"domains": domains}))
            continue
        results.append(Result(key, "nodes", title, State.OK,
                              f"Answers SMTP at {where}; hosts {len(domains)} domain"
                              f"{'s' if len(domains) != 1 else ''}.",
                              data={"domains": domains}))
    return results


def host_dns_results(lookup: DnsLookup) -> list[Result]:
    """The mail host's name points at its public addresses, and each address's PTR names the
    host and is forward-confirmed."""
    host = settings.MAILHOST_HOSTNAME
    results = []
    for rtype, wanted in (("A", settings.MAILHOST_PUBLIC_IPV4),
                          ("AAAA", settings.MAILHOST_PUBLIC_IPV6)):
        if not wanted:
            continue
        key, title = f"dns:host:{rtype}", f"{host} {rtype}"
        try:
            found = lookup.texts(host, rtype)
        except Unknown as exc:
            results.append(Result(key, "dns", title, State.UNKNOWN, f"No answer: {exc}."))
            continue
        missing = sorted(set(map(_ip, wanted)) - set(map(_ip, found)))
        state = State.PROBLEM if missing else State.OK
        evidence = f"Found {', '.join(found) or 'nothing'}"
        evidence += f"; missing {', '.join(missing)}." if missing else "."
        results.append(Result(key, "dns", title, state, evidence))
    for ip in (*settings.MAILHOST_PUBLIC_IPV4, *settings.MAILHOST_PUBLIC_IPV6):
        key, title = f"dns:ptr:{ip}", f"PTR of {ip}"
        try:
            names = lookup.texts(dns.reversename.from_address(ip).to_text(), "PTR")
        except Unknown as exc:
            results.append(Result(key, "dns", title, State.UNKNOWN, f"No answer: {exc}."))
            continue
        name = names[0] if names else ""
        if not name:
            results.append(Result(key, "dns", title, State.PROBLEM,
                                  f"No PTR record: receivers distrust mail from {ip}."))
        elif name != host.lower():
            results.append(Result(key, "dns", title, State.PROBLEM,
                                  f"Names {name}, not {host}."))
        elif not forward_confirmed(lookup, name, ip):
            results.append(Result(key, "dns", title, State.PROBLEM,
                                  f"Names {name}, whose A/AAAA records do not include {ip}."))
        else:
            results.append(Result(key, "dns", title, State.OK,
                                  f"Names {name}, forward-confirmed."))
    return results


def dnsbl_zones() -> list[tuple[str, str]]:
    """(zone, removal page template) of each configured blocklist ("zone" or "zone|url")."""
    zones = []
    for entry in settings.MAILHOST_DNSBL_ZONES:
        zone, _, page = entry.partition("|")
        zone = zone.strip().lower().rstrip(".")
        zones.append((zone, page.strip() or REMOVAL_PAGES.get(zone, f"https://{zone}/")))
    return zones


def dnsbl_result(lookup: DnsLookup, ip: str, zone: str, removal: str) -> Result:
    key, title = f"dnsbl:{ip}:{zone}", f"{ip} on {zone}"
    reversed_ = dns.reversename.from_address(ip).to_text(omit_final_dot=True)
    query = reversed_.removesuffix(".in-addr.arpa").removesuffix(".ip6.arpa") + f".{zone}"
    link = removal.replace("{ip}", ip)
    try:
        codes = lookup.texts(query, "A")
        reasons = lookup.texts(query, "TXT") if codes else []
    except Unknown as exc:
        return Result(key, "dnsbl", title, State.UNKNOWN, f"No answer: {exc}.")
    if not codes:
        return Result(key, "dnsbl", title, State.OK, "Not listed.")
    if all(ipaddress.ip_address(code) in DNSBL_ERRORS for code in codes):
        return Result(key, "dnsbl", title, State.UNKNOWN,
                      f"The blocklist refused the query ({', '.join(codes)}): use a resolver "
                      "of your own for DNSBL checks.")
    reason = f" {' '.join(reasons)}" if reasons else ""
    return Result(key, "dnsbl", title, State.PROBLEM,
                  f"Listed ({', '.join(codes)}).{reason}", link=link)


def dnsbl_results(lookup: DnsLookup, *, skip: set[str] = frozenset()) -> list[Result]:
    """Every sending IP against every blocklist, except the checks in `skip` (fresh enough)."""
    results = []
    for ip in (*settings.MAILHOST_PUBLIC_IPV4, *settings.MAILHOST_PUBLIC_IPV6):
        for zone, removal in dnsbl_zones():
            if f"dnsbl:{ip}:{zone}" not in skip:
                results.append(dnsbl_result(lookup, ip, zone, removal))
    return results


def domain_results() -> list[Result]:
    """Each hosted domain's record verdicts (identity's DNS checks, MX among them), summed up."""
    verdicts: dict[int, list[DnsCheck]] = defaultdict(list)
    domains = list(Domain.objects.filter(live_domain_q()).order_by("name"))
    for check in DnsCheck.objects.filter(domain__in=domains):
        verdicts[check.domain_id].append(check)
    results = []
    for domain in domains:
        checks = verdicts[domain.pk]
        wrong = [c for c in checks if c.status == CheckStatus.WRONG]
        unknown = [c for c in checks if c.status == CheckStatus.UNKNOWN]
        if wrong:
            state = State.PROBLEM
            evidence = "; ".join(f"{c.key}: {c.detail or 'wrong'}" for c in wrong)
        elif unknown or not checks:
            state = State.UNKNOWN
            evidence = ("Not checked yet." if not checks else
                        "No answer for " + ", ".join(c.key for c in unknown) + ".")
        else:
            state = State.OK
            evidence = f"All {len(checks)} records as expected (MX pointing here among them)."
        results.append(Result(f"domain:{domain.name}:records", "domains",
                              f"{domain.name}: DNS records", state, evidence,
                              organisation_id=domain.organisation_id))
    return results


def _ip(text: str) -> str:
    return str(ipaddress.ip_address(text))


def _age(seconds: int) -> str:
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            n = seconds // size
            return f"{n} {unit}{'s' if n != 1 else ''}"
    return f"{seconds} seconds"


def _bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1024 or unit == "TB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} TB"
