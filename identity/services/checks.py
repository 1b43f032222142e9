"""DNS checks: running them (no transaction held) and storing what they found; ownership
verification; a check queued for now."""

import dataclasses
import datetime as dt
import logging

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone

from identity import events
from identity.models import (
    CheckStatus,
    DnsCheck,
    DnsCheckHistory,
)
from identity.records import expected_records
from identity.selectors import (
    posture_snapshot,
    verification_record,
)
from identity.services.common import DnsUnknown, _posture_for_update
from identity.services.dkim import dkim_rotation_advance
from identity.verify import (
    CheckResult,
    DnsLookup,
    PolicyFetcher,
    https_policy_fetcher,
    make_resolver,
    run_checks,
)
from mailboxes.models import Domain, VerificationMethod
from mailboxes.selectors import domain_verified_owner
from mailboxes.services import domain_mark_verified
from mailhost.errors import Conflict
from tenants.access import SYSTEM, Actor, require_write
from tenants.models import Membership, Role

logger = logging.getLogger(__name__)


# --- checks ----------------------------------------------------------------------------------


def default_lookup() -> DnsLookup:
    return DnsLookup(
        make_resolver(
            settings.MAILHOST_DNS_RESOLVERS,
            timeout_ms=settings.MAILHOST_DNS_TIMEOUT_MS,
            lifetime_ms=settings.MAILHOST_DNS_LIFETIME_MS,
        )
    )


def dns_check_run(
    *,
    actor: Actor,
    domain: Domain,
    lookup: DnsLookup | None = None,
    fetch_policy: PolicyFetcher | None = None,
    advance: bool = True,
    only: tuple[str, ...] | None = None,
    verify_as: Actor = SYSTEM,
) -> list[CheckResult]:
    """Check every expected record live (or the `only` keys), store the verdicts, verify the
    domain's ownership if its token is seen, then take due rotation steps.

    Not atomic: the DNS queries run outside any transaction; the verdicts are stored in one.
    Organisation admins get an e-mail when a verdict's status changes (not on the first one).
    The ownership is marked verified by `verify_as` (the verifier itself, unless a person asked).
    It writes (history, rotation steps, mail), so it needs write access.
    """
    require_write(actor, domain.organisation_id, "That domain")
    snap = posture_snapshot(domain)
    lookup = lookup or default_lookup()
    fetch_policy = fetch_policy or https_policy_fetcher(
        lookup=lookup, timeout_ms=settings.MAILHOST_MTASTS_FETCH_TIMEOUT_MS
    )
    records = expected_records(snap)
    if only is not None:
        records = [r for r in records if r.key in only]
    results = run_checks(snap, records, lookup=lookup, fetch_policy=fetch_policy)
    results = [_ownership_verdict(domain, r) for r in results]
    _store_results(domain=domain, results=results, partial=only is not None)
    _verify_ownership(domain, results, verify_as)
    if advance and only is None:
        dkim_rotation_advance(actor=SYSTEM, domain=domain)
    return results


def _ownership_verdict(domain: Domain, result: CheckResult) -> CheckResult:
    """The token is there, but another organisation holds the name verified: not "ok". Whoever
    reads this controls the domain's DNS (they published the token), so saying so tells them
    nothing they may not know."""
    if result.key != "verification" or result.status != CheckStatus.OK or domain.is_verified:
        return result
    if domain_verified_owner(domain.name) is None:
        return result
    detail = (f"The record is published, but {domain.display_name} is already verified by "
              "another organisation on this service. Ask the service's staff to move it.")
    return dataclasses.replace(result, status=CheckStatus.WRONG, detail=detail)


def _verify_ownership(domain: Domain, results: list[CheckResult], actor: Actor) -> None:
    seen = any(r.key == "verification" and r.status == CheckStatus.OK for r in results)
    if not seen or domain.is_verified:
        return
    try:
        verified = domain_mark_verified(actor=actor, domain=domain, method=VerificationMethod.DNS)
    except Conflict as exc:  # verified elsewhere meanwhile: the next check says so
        logger.info("%s not verified: %s", domain.name, exc.detail)
        return
    domain.verified_at, domain.verification_method = (
        verified.verified_at, verified.verification_method
    )


def domain_verify_now(*, actor: Actor, domain: Domain, lookup: DnsLookup | None = None) -> Domain:
    """Look for the ownership record now and verify the domain if it is there.

    Not atomic: one DNS query (bounded by the resolver lifetime), then the verdict and the
    verification are stored in transactions of their own. Conflict `not_verified` says what
    was found instead; DnsUnknown when DNS did not answer.
    """
    require_write(actor, domain.organisation_id, "That domain")
    if domain.is_verified:
        return domain
    results = dns_check_run(
        actor=actor, domain=domain, lookup=lookup, only=("verification",), verify_as=actor
    )
    if domain.is_verified:
        return domain
    result = next(r for r in results if r.key == "verification")
    record = verification_record(domain)
    if result.status == CheckStatus.UNKNOWN:
        raise DnsUnknown(f"DNS did not answer for {record.name}: {result.detail} Try again.")
    raise Conflict(
        f"{domain.display_name} is not verified yet: {result.detail} Publish a TXT record at "
        f"{record.name} with the value {record.value}, then try again (DNS changes can take "
        "a while to be seen).",
        code="not_verified",
    )


@transaction.atomic
def _store_results(
    *, domain: Domain, results: list[CheckResult], partial: bool = False
) -> list[tuple[CheckResult, str]]:
    """Store the verdicts; `partial`: only these keys were checked (keep the others, and the
    time of the last full check)."""
    now = timezone.now()
    posture = _posture_for_update(domain)  # the row lock serialises two runs for one domain
    checks = DnsCheck.objects.filter(domain=domain)
    if partial:
        checks = checks.filter(key__in=[r.key for r in results])
    current = {c.key: c for c in checks}
    changes: list[tuple[CheckResult, str]] = []
    history: list[DnsCheckHistory] = []
    for result in results:
        check = current.pop(result.key, None)
        found = list(result.found)
        previous = check.status if check else ""
        if check is None or (check.status, check.detail, check.found) != (
            result.status, result.detail, found
        ):
            history.append(DnsCheckHistory(
                domain=domain, key=result.key, name=result.name, rtype=result.type,
                status=result.status, previous_status=previous, detail=result.detail,
                found=found, checked_at=now,
            ))
        if check is not None and check.status != result.status:
            changes.append((result, previous))
        _save_check(domain, check, result, found, now)
    DnsCheck.objects.filter(pk__in=[c.pk for c in current.values()]).delete()
    DnsCheckHistory.objects.bulk_create(history)
    if not partial:
        # A claim waiting for its ownership record is looked at more often than a live domain.
        minutes = settings.MAILHOST_DNS_CHECK_INTERVAL_MINUTES
        if not Domain.objects.filter(pk=domain.pk, verified_at__isnull=False).exists():
            minutes = min(minutes, settings.MAILHOST_DOMAIN_VERIFY_INTERVAL_MINUTES)
        posture.last_checked_at = now
        posture.next_check_at = now + dt.timedelta(minutes=minutes)
        posture.save(update_fields=["last_checked_at", "next_check_at"])
    if changes:
        domain_id = domain.pk
        transaction.on_commit(lambda: notify_status_changes(domain_id=domain_id, changes=changes))
    return changes


def _save_check(domain, check, result: CheckResult, found: list, now) -> None:
    if check is None:
        DnsCheck.objects.create(
            domain=domain, key=result.key, name=result.name, rtype=result.type,
            status=result.status, detail=result.detail, found=found, checked_at=now,
            changed_at=now,
        )
        return
    if check.status != result.status:
        check.changed_at = now
    check.name, check.rtype, check.status = result.name, result.type, result.status
    check.detail, check.found, check.checked_at = result.detail, found, now
    check.save()


def notify_status_changes(*, domain_id: int, changes: list[tuple[CheckResult, str]]) -> None:
    """One e-mail to the organisation's owners and admins listing what changed."""
    domain = Domain.objects.select_related("organisation").get(pk=domain_id)
    recipients = sorted(
        set(
            Membership.objects.filter(
                organisation_id=domain.organisation_id, role__in=[Role.OWNER, Role.ADMIN]
            )
            .exclude(user__email="")
            .values_list("user__email", flat=True)
        )
    )
    if not recipients:
        return
    lines = [
        f"The DNS checks of {domain.name} changed:",
        "",
        *(f"- {r.type} {r.name}: {previous} → {r.status}. {r.detail}" for r, previous in changes),
        "",
        f"All records: {settings.MAILHOST_PORTAL_URL.rstrip('/')}/mail-admin/",
    ]
    worse = any(r.status != CheckStatus.OK for r, _ in changes)
    subject = f"[Mailhost] DNS of {domain.name}: " + ("needs attention" if worse else "fixed")
    try:
        send_mail(subject, "\n".join(lines), None, recipients)
    except OSError as exc:  # the verdicts are stored; the history shows the change regardless
        logger.warning("DNS change notice for %s not sent: %s", domain.name, exc)


def dns_check_queue(*, actor: Actor, domain: Domain) -> None:
    """Check the domain's records now (in the worker), once the caller's transaction commits.
    A check writes history, may take DKIM rotation steps and mails admins: a write."""
    require_write(actor, domain.organisation_id, "That domain")
    domain_id = domain.pk
    transaction.on_commit(lambda: events.check_wanted.send(sender=Domain, domain_id=domain_id))
