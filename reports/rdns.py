"""Reverse names of the sending sources reports name: looked up by a task after the report
is stored (DNS never runs inside a request or a transaction), kept for RECHECK_DAYS."""

from __future__ import annotations

import datetime as dt
import ipaddress

import dns.reversename
from django.utils import timezone

from identity.services import default_lookup
from identity.verify import DnsLookup, Unknown
from reports.models import SourceName

RECHECK_DAYS = 7
MAX_LOOKUPS = 200  # per run: a report naming thousands of sources is resolved over several


def source_names_resolve(ips, *, lookup: DnsLookup | None = None) -> int:
    """Look up the PTR (and confirm it forward) of every IP not checked recently."""
    now = timezone.now()
    ips = set(ips)
    fresh = set(SourceName.objects.filter(
        ip__in=ips, checked_at__gte=now - dt.timedelta(days=RECHECK_DAYS)
    ).values_list("ip", flat=True))
    lookup = lookup or default_lookup()
    done = 0
    for ip in sorted(ips - fresh)[:MAX_LOOKUPS]:
        try:
            names = lookup.texts(dns.reversename.from_address(ip).to_text(), "PTR")
        except Unknown:
            continue  # a later report asks again
        name = names[0] if names else ""
        SourceName.objects.update_or_create(
            ip=ip, defaults={"name": name[:253], "confirmed": forward_confirmed(lookup, name, ip),
                             "checked_at": now})
        done += 1
    return done


def source_names(ips) -> dict[str, SourceName]:
    return {row.ip: row for row in SourceName.objects.filter(ip__in=list(ips))}


def forward_confirmed(lookup: DnsLookup, name: str, ip: str) -> bool:
    """Forward-confirmed: one of the name's A or AAAA addresses is the IP."""
    if not name:
        return False
    wanted = ipaddress.ip_address(ip)
    try:
        found = [*lookup.texts(name, "A"), *lookup.texts(name, "AAAA")]
    except Unknown:
        return False  # unconfirmed for now; looked at again after RECHECK_DAYS
    return any(ipaddress.ip_address(address) == wanted for address in found)
