"""Running the status checks, storing their verdicts, and alerting on changes (only)."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone

from identity.services import default_lookup
from identity.verify import DnsLookup
from mailhost.backend.config import NodeConfig
from mailhost.errors import Unavailable
from nodes.models import MailNode
from routing.queue import queue_entries_owned
from status import checks
from status.checks import Result
from status.models import State, StatusAlert, StatusCheck
from tenants.models import Organisation

logger = logging.getLogger(__name__)


def status_record(
    results: list[Result], *, replace: tuple[str, ...] = (), keep: set[str] = frozenset(),
    now: dt.datetime | None = None,
) -> list[StatusAlert]:
    """Store each result as its check's latest verdict; raise an alert for each change.

    A first verdict alerts only when it is a problem (news either way); a repeated verdict
    never alerts. Checks whose key starts with one of `replace` and that this run no longer
    produced (a domain gone, a daemon no longer run) are removed, except those in `keep`."""
    now = now or timezone.now()
    alerts = []
    with transaction.atomic():
        stored = {c.key: c for c in StatusCheck.objects.select_for_update().filter(
            key__in=[r.key for r in results])}
        for result in results:
            check = stored.get(result.key)
            previous = check.state if check else ""
            if check is None:
                check = StatusCheck(key=result.key, changed_at=now)
            elif check.state != result.state:
                check.changed_at = now
            check.group, check.title, check.state = result.group, result.title, result.state
            check.evidence, check.link = result.evidence[:2000], result.link
            check.organisation_id, check.data, check.checked_at = (
                result.organisation_id, result.data, now)
            check.save()
            if previous != result.state and (previous or result.state == State.PROBLEM):
                alerts.append(StatusAlert.objects.create(
                    key=result.key, title=result.title, previous=previous,
                    state=result.state, evidence=check.evidence,
                    organisation_id=result.organisation_id))
        produced = {r.key for r in results} | set(keep)
        for prefix in replace:
            (StatusCheck.objects.filter(key__startswith=prefix)
             .exclude(key__in=produced).delete())
        transaction.on_commit(lambda: _send(alerts))
    return alerts


def _send(alerts: list[StatusAlert]) -> None:
    for alert in alerts:
        logger.warning("status: %s is %s (was %s): %s", alert.key, alert.state,
                       alert.previous or "not checked", alert.evidence)
    if not alerts or not settings.MAILHOST_STATUS_ALERT_EMAILS:
        return
    lines = [f"{a.title}: {a.previous or 'new'} → {a.state}\n  {a.evidence}" for a in alerts]
    subject = (f"[{settings.MAILHOST_HOSTNAME}] status: {alerts[0].title} is {alerts[0].state}"
               + (f" (and {len(alerts) - 1} more)" if len(alerts) > 1 else ""))
    try:
        send_mail(subject, "\n\n".join(lines) + "\n", settings.DEFAULT_FROM_EMAIL,
                  settings.MAILHOST_STATUS_ALERT_EMAILS)
    except OSError as exc:  # the alert stays recorded on the status page
        logger.warning("status: the alert e-mail could not be sent: %s", exc)


def status_check_node(node: MailNode, *, now: dt.datetime | None = None) -> list[StatusAlert]:
    """On the node (its queue): daemons, queue, disk and certificate."""
    now = now or timezone.now()
    prefix = f"node:{node.name}:"
    cfg = NodeConfig.from_settings(state_dir=Path(node.state_dir))
    previous = dict(StatusCheck.objects.filter(key__startswith=f"{prefix}disk:")
                    .values_list("key", "data"))
    results = checks.node_results(node.name, cfg, previous=previous, now=now)
    results += _deferred_results(node, now)
    return status_record(results, replace=(f"{prefix}daemon:", f"{prefix}disk:", f"{prefix}tls"),
                         now=now)


def _deferred_results(node: MailNode, now: dt.datetime) -> list[Result]:
    try:
        items = queue_entries_owned(node)
    except Unavailable:
        items = None
    stored = dict(StatusCheck.objects.filter(key__startswith="org:",
                                             key__endswith=f":deferred:{node.name}")
                  .values_list("key", "organisation_id"))
    owners = {i.organisation_id for i in items or () if i.organisation_id} | set(stored.values())
    names = dict(Organisation.objects.filter(pk__in=owners).values_list("pk", "name"))
    return checks.deferred_results(node.name, items, stored=stored, names=names, now=now)


def status_check_portal(*, lookup: DnsLookup | None = None,
                        now: dt.datetime | None = None) -> list[StatusAlert]:
    """In the worker: reconcile lag, whether each node answers SMTP, the mail host's DNS,
    DNSBL listings (cached for MAILHOST_DNSBL_CACHE_SECONDS), and each domain's record
    verdicts."""
    now = now or timezone.now()
    lookup = lookup or default_lookup()
    fresh = set(StatusCheck.objects.filter(
        key__startswith="dnsbl:",
        checked_at__gte=now - dt.timedelta(seconds=settings.MAILHOST_DNSBL_CACHE_SECONDS),
    ).values_list("key", flat=True))
    results = [
        *checks.reconcile_results(now),
        *checks.node_reach_results(),
        *checks.host_dns_results(lookup),
        *checks.dnsbl_results(lookup, skip=fresh),
        *checks.domain_results(),
    ]
    return status_record(results, replace=("dnsbl:", "dns:", "domain:", "reach:"), keep=fresh,
                         now=now)
