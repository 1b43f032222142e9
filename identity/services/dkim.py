"""DKIM keys: the first key, rotation (start, advance, retire) and the lifecycle steps."""

import datetime as dt

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from identity.dkim import dated_selector, generate_key
from identity.models import (
    IN_FLIGHT_STATES,
    CheckStatus,
    DkimAlgorithm,
    DkimKey,
    DkimKeyState,
    DnsCheck,
)
from identity.selectors import (
    posture_of,
)
from identity.services.common import _audit, _key_state, _lock, _records_changed, _signing_changed
from mailboxes.models import Domain
from mailhost.crypto import encrypt
from mailhost.errors import Conflict, NotFound
from nodes.changes import record_change
from nodes.models import NodeChange
from tenants.access import Actor, require_write

# --- DKIM ------------------------------------------------------------------------------------


def _new_key(domain: Domain, state: str, algorithm: str = DkimAlgorithm.RSA) -> DkimKey:
    taken = set(domain.dkim_keys.values_list("selector", flat=True))
    private_pem, public_b64 = generate_key(algorithm)
    return DkimKey.objects.create(
        domain=domain,
        selector=dated_selector(timezone.now().date(), taken),
        algorithm=algorithm,
        private_key_encrypted=encrypt(private_pem),
        public_key=public_b64,
        state=state,
        activated_at=timezone.now() if state == DkimKeyState.ACTIVE else None,
    )


@transaction.atomic
def dkim_key_create_initial(*, domain: Domain) -> DkimKey:
    """A new domain signs from the start: its first key is active at once.

    Later keys go through the rotation lifecycle (published and seen in DNS before signing).
    """
    key = _new_key(domain, DkimKeyState.ACTIVE)
    record_change(node_id=domain.node_id, kind=NodeChange.Kind.DKIM, object_id=domain.pk)
    return key


@transaction.atomic
def dkim_rotate_start(*, actor: Actor, domain: Domain) -> list[DkimKey]:
    """Generate the next key(s) — RSA, and Ed25519 when enabled — as pending publication.

    Signing does not change yet: the new key must be seen in DNS first (dkim_rotation_advance).
    """
    require_write(actor, domain.organisation_id, "That domain")
    domain = _lock(domain)
    in_flight = domain.dkim_keys.filter(state__in=IN_FLIGHT_STATES).order_by("selector")
    if in_flight:
        selectors = ", ".join(f"{k.selector} ({k.state})" for k in in_flight)
        raise Conflict(
            f"A rotation is already in progress: {selectors}. Let it finish or retire the new "
            "key first.",
            code="rotation_in_progress",
        )
    algorithms = [DkimAlgorithm.RSA]
    if posture_of(domain).dkim_ed25519:
        algorithms.append(DkimAlgorithm.ED25519)
    keys = [_new_key(domain, DkimKeyState.PENDING, algorithm) for algorithm in algorithms]
    _audit(actor, domain, "dkim.rotate", domain.name, after={"keys": [_key_state(k) for k in keys]})
    _records_changed(domain)
    return keys


@transaction.atomic
def dkim_rotation_advance(
    *, actor: Actor, domain: Domain, force: bool = False, now: dt.datetime | None = None
) -> list[str]:
    """Take every step of the rotation lifecycle that is due; return what happened.

    pending → published once the verifier has seen the key in DNS; published → active (the old
    active key → retiring) after the switch delay; retiring → retired after the grace period.
    `force` skips the DNS evidence and the delay (audited as forced); never the grace period.
    """
    require_write(actor, domain.organisation_id, "That domain")
    domain = _lock(domain)
    now = now or timezone.now()
    checks = {c.key: c for c in DnsCheck.objects.filter(domain=domain, key__startswith="dkim:")}
    keys = list(domain.dkim_keys.exclude(state=DkimKeyState.RETIRED).order_by("created_at", "id"))
    steps: list[str] = []
    for key in keys:
        seen = _seen(checks.get(f"dkim:{key.selector}"), key)
        if key.state == DkimKeyState.PENDING and (seen or force):
            key.state, key.published_at = DkimKeyState.PUBLISHED, now
            key.save(update_fields=["state", "published_at"])
            steps.append(f"{key.selector} published")
        if key.state == DkimKeyState.PUBLISHED and (force or (seen and _switch_due(key, now))):
            steps.append(_switch(domain, key, now))
        if key.state == DkimKeyState.RETIRING and _grace_over(key, now):
            _retire(key, now)
            steps.append(f"{key.selector} retired")
    if steps:
        _audit(actor, domain, "dkim.advance", domain.name, after={"steps": steps, "forced": force})
        _records_changed(domain)
    return steps


def _seen(check: DnsCheck | None, key: DkimKey) -> bool:
    if check is None or check.status != CheckStatus.OK:
        return False
    return check.checked_at >= key.created_at


def _switch_due(key: DkimKey, now: dt.datetime) -> bool:
    delay = dt.timedelta(minutes=settings.MAILHOST_DKIM_SWITCH_DELAY_MINUTES)
    return key.published_at is not None and key.published_at + delay <= now


def _grace_over(key: DkimKey, now: dt.datetime) -> bool:
    grace = dt.timedelta(days=settings.MAILHOST_DKIM_GRACE_DAYS)
    return key.retiring_at is not None and key.retiring_at + grace <= now


def _switch(domain: Domain, key: DkimKey, now: dt.datetime) -> str:
    """Sign with `key` from now on; the key it replaces stays published for the grace period."""
    old = domain.dkim_keys.filter(state=DkimKeyState.ACTIVE, algorithm=key.algorithm).first()
    if old is not None:  # first, so the one-active-key constraint holds at every statement
        old.state, old.retiring_at = DkimKeyState.RETIRING, now
        old.save(update_fields=["state", "retiring_at"])
    key.state, key.activated_at = DkimKeyState.ACTIVE, now
    key.save(update_fields=["state", "activated_at"])
    _signing_changed(domain)
    return f"{key.selector} signing" + (f", {old.selector} retiring" if old else "")


def _retire(key: DkimKey, now: dt.datetime) -> None:
    # Nothing signs with a retired key again: the private half is destroyed, not kept.
    key.state, key.retired_at, key.private_key_encrypted = DkimKeyState.RETIRED, now, ""
    key.save(update_fields=["state", "retired_at", "private_key_encrypted"])


@transaction.atomic
def dkim_retire(*, actor: Actor, domain: Domain, selector: str) -> DkimKey:
    """Retire a key now: end a grace period early, or abandon a rotation's new key."""
    require_write(actor, domain.organisation_id, "That domain")
    domain = _lock(domain)
    key = domain.dkim_keys.filter(selector=(selector or "").lower()).first()
    if key is None:
        raise NotFound("That DKIM key was not found.")
    if key.state == DkimKeyState.ACTIVE:
        raise Conflict(
            f"{key.selector} is signing mail; rotate to a new key before retiring it.",
            code="key_active",
        )
    if key.state == DkimKeyState.RETIRED:
        return key
    before = _key_state(key)
    _retire(key, timezone.now())
    _audit(actor, domain, "dkim.retire", key.selector, before=before, after=_key_state(key))
    _records_changed(domain)
    return key


def _ed25519_set(actor: Actor, domain: Domain, enabled: bool) -> None:
    keys = domain.dkim_keys.filter(algorithm=DkimAlgorithm.ED25519)
    if enabled and not keys.exclude(state__in=[DkimKeyState.RETIRING, DkimKeyState.RETIRED]):
        # Signs once seen in DNS, through the ordinary rotation steps.
        _new_key(domain, DkimKeyState.PENDING, DkimAlgorithm.ED25519)
    if not enabled:
        now = timezone.now()
        for key in keys.filter(state__in=IN_FLIGHT_STATES):
            _retire(key, now)
        active = keys.filter(state=DkimKeyState.ACTIVE).first()
        if active is not None:
            active.state, active.retiring_at = DkimKeyState.RETIRING, now
            active.save(update_fields=["state", "retiring_at"])
            _signing_changed(domain)
