"""Periodic DNS work: checks spread over the interval, DKIM rotation, publishing.

Every domain is checked once per MAILHOST_DNS_CHECK_INTERVAL_MINUTES, at its own point in the
interval (its posture's `next_check_at`, first spread by a hash of its name), so ten thousand
domains make a steady trickle of queries rather than a burst every six hours.
"""

import datetime as dt
import logging
import zlib

from celery import shared_task
from django.conf import settings
from django.db.models import Q
from django.dispatch import receiver
from django.utils import timezone

from identity import events
from identity.inbound import collect_from_node
from identity.models import IN_FLIGHT_STATES, DkimAlgorithm, DkimKey, DkimKeyState, DomainPosture
from identity.selectors import posture_defaults
from identity.services import PublishFailed, dkim_rotate_start, dns_check_run, dns_publish
from mailboxes.models import Domain, DomainStatus
from mailhost.errors import Conflict, Invalid
from nodes.models import MailNode
from nodes.queues import node_queue
from tenants.access import SYSTEM

logger = logging.getLogger(__name__)

TICK_SECONDS = 60  # how often beat runs check_due (settings CELERY_BEAT_SCHEDULE)
BATCH = 1000
CHECK_AFTER_PUBLISH_SECONDS = 5  # time for the primary to notify its secondaries


def _interval() -> dt.timedelta:
    return dt.timedelta(minutes=settings.MAILHOST_DNS_CHECK_INTERVAL_MINUTES)


def first_check_at(
    name: str, now: dt.datetime, interval: dt.timedelta | None = None
) -> dt.datetime:
    """A stable point in the coming interval, different for each domain."""
    seconds = int((interval or _interval()).total_seconds()) or 1
    return now + dt.timedelta(seconds=zlib.crc32(name.encode()) % seconds)


def ensure_postures(now: dt.datetime) -> int:
    """Give domains without a posture row one, with defaults and a spread first check (soon
    for a domain waiting for its ownership record)."""
    missing = Domain.objects.filter(posture__isnull=True).values_list(
        "pk", "name", "verified_at"
    )[:BATCH]
    verify = dt.timedelta(minutes=settings.MAILHOST_DOMAIN_VERIFY_INTERVAL_MINUTES)
    postures = [
        DomainPosture(
            domain_id=pk,
            next_check_at=first_check_at(name, now, None if verified else verify),
            **posture_defaults(name),
        )
        for pk, name, verified in missing
    ]
    DomainPosture.objects.bulk_create(postures, ignore_conflicts=True)
    return len(postures)


@shared_task(name="identity.check_due")
def check_due() -> int:
    """Enqueue the checks that are due, spread over the next tick; returns how many."""
    now = timezone.now()
    ensure_postures(now)
    due = list(
        DomainPosture.objects.filter(
            Q(next_check_at__lte=now) | Q(next_check_at__isnull=True),
            domain__status=DomainStatus.ACTIVE,
        )
        .order_by("next_check_at")
        .values_list("domain_id", flat=True)[:BATCH]
    )
    # Claim them, so the next tick does not enqueue them again while they wait in the queue.
    DomainPosture.objects.filter(domain_id__in=due).update(next_check_at=now + _interval())
    for index, domain_id in enumerate(due):
        countdown = index * TICK_SECONDS / max(len(due), 1)
        check_domain.apply_async(args=[domain_id], countdown=countdown)
    return len(due)


# Every record can take MAILHOST_DNS_LIFETIME_MS when servers do not answer: allow for it.
@shared_task(name="identity.check_domain", soft_time_limit=300, time_limit=330)
def check_domain(domain_id: int) -> dict:
    """Check one domain's records live, store the verdicts, take due DKIM rotation steps."""
    domain = Domain.objects.filter(pk=domain_id).first()
    if domain is None:
        return {}
    results = dns_check_run(actor=SYSTEM, domain=domain)
    return {r.key: r.status for r in results}


@shared_task(name="identity.publish_domain", autoretry_for=(PublishFailed,), retry_backoff=30,
             max_retries=5)
def publish_domain(domain_id: int) -> list[str]:
    """Publish by RFC 2136, then check soon, so a newly published key is seen and advances."""
    domain = Domain.objects.filter(pk=domain_id).first()
    if domain is None:
        return []
    try:
        changed = dns_publish(actor=SYSTEM, domain=domain)
    except Conflict:
        return []  # publishing was switched off meanwhile
    except Invalid as exc:  # a server publishing may not reach: retrying cannot help
        logger.warning("publish of %s refused: %s", domain.name, exc.detail)
        return []
    check_domain.apply_async(args=[domain_id], countdown=CHECK_AFTER_PUBLISH_SECONDS)
    return changed


@shared_task(name="identity.rotate_due")
def rotate_due() -> dict:
    """Start scheduled rotations, and re-check domains whose rotation has a step pending."""
    now = timezone.now()
    started = 0
    if settings.MAILHOST_DKIM_ROTATION_DAYS > 0:
        cutoff = now - dt.timedelta(days=settings.MAILHOST_DKIM_ROTATION_DAYS)
        for domain in _due_for_rotation(cutoff)[:BATCH]:
            try:
                dkim_rotate_start(actor=SYSTEM, domain=domain)
                started += 1
            except Conflict as exc:  # started by someone else meanwhile
                logger.info("rotation of %s not started: %s", domain.name, exc.detail)
    in_flight = (
        DkimKey.objects.filter(
            Q(state__in=IN_FLIGHT_STATES) | Q(state=DkimKeyState.RETIRING),
            domain__status=DomainStatus.ACTIVE,
        )
        .values_list("domain_id", flat=True)
        .distinct()[:BATCH]
    )
    for domain_id in in_flight:
        check_domain.delay(domain_id)
    return {"started": started, "checked": len(in_flight)}


def _due_for_rotation(cutoff: dt.datetime):
    busy = DkimKey.objects.filter(state__in=IN_FLIGHT_STATES).values("domain_id")
    return (
        Domain.objects.filter(
            status=DomainStatus.ACTIVE,
            dkim_keys__state=DkimKeyState.ACTIVE,
            dkim_keys__algorithm=DkimAlgorithm.RSA,
            dkim_keys__activated_at__lte=cutoff,
        )
        .exclude(pk__in=busy)
        .order_by("pk")
    )


@shared_task(name="identity.collect_inbound", autoretry_for=(OSError,), max_retries=3)
def collect_inbound(node_id: int) -> int:
    """On the node: read its mail-flow counters and circuit breaker into the database."""
    return collect_from_node(MailNode.objects.get(pk=node_id))


@shared_task(name="identity.collect_inbound_all")
def collect_inbound_all() -> None:
    """Beat: ask every node for its mail-flow figures, each on its own queue."""
    for node_id, name in MailNode.objects.values_list("pk", "name"):
        collect_inbound.apply_async(args=[node_id], queue=node_queue(name))


# --- follow-ups the services ask for (identity.events), connected by IdentityConfig.ready() ---


def _enqueue(task, domain_id: int) -> None:
    try:
        task.delay(domain_id)
    except Exception as exc:  # broker down: the periodic checks and publishes catch up
        logger.warning("%s for domain %s not enqueued: %s", task.name, domain_id, exc)


@receiver(events.publish_wanted, dispatch_uid="identity.publish_wanted")
def _publish_wanted(sender, domain_id: int, **kwargs) -> None:
    _enqueue(publish_domain, domain_id)


@receiver(events.check_wanted, dispatch_uid="identity.check_wanted")
def _check_wanted(sender, domain_id: int, **kwargs) -> None:
    _enqueue(check_domain, domain_id)
