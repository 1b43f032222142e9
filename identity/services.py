"""Writes for DKIM keys and the domain's DNS posture.

Keyword-only, atomic, audited, like every service. Two exceptions are not atomic on purpose and
say so: running the DNS checks and publishing by RFC 2136 talk to the network, and a transaction
must not stay open (holding row locks) while a DNS server takes its time; each stores its
outcome in a short transaction of its own.
"""

import base64
import binascii
import dataclasses
import datetime as dt
import hashlib
import ipaddress
import logging
import re

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone

from identity import bimi, dmarc, events, mtasts
from identity.addresses import Network, parse_networks, refusal
from identity.dkim import dated_selector, generate_key
from identity.models import (
    IN_FLIGHT_STATES,
    CheckStatus,
    DkimAlgorithm,
    DkimKey,
    DkimKeyState,
    DnsCheck,
    DnsCheckHistory,
    DomainPosture,
    MtaStsMode,
    TsigAlgorithm,
)
from identity.publish import (
    PublishError,
    PublishTarget,
    TargetRefused,
    publish,
    refusal_message,
)
from identity.records import expected_records
from identity.report_uris import report_uris
from identity.selectors import (
    dmarc_blockers,
    posture_defaults,
    posture_of,
    posture_snapshot,
    records_to_remove,
    verification_record,
)
from identity.verify import (
    CheckResult,
    DnsLookup,
    PolicyFetcher,
    https_policy_fetcher,
    make_resolver,
    run_checks,
)
from mailboxes.models import Domain, VerificationMethod
from mailboxes.selectors import domain_verified_owner, report_address_problem
from mailboxes.services import domain_mark_verified
from mailhost.crypto import decrypt, encrypt
from mailhost.errors import Conflict, DomainError, Invalid, NotFound
from mailhost.names import InvalidName, normalise_domain
from nodes.changes import record_change
from nodes.models import NodeChange
from tenants.access import SYSTEM, Actor, require_write
from tenants.audit import audit_record
from tenants.models import Membership, Role

logger = logging.getLogger(__name__)

_TSIG_KEY_NAME = re.compile(r"^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?(\.[a-z0-9_-]{1,63})*\.?$")


class PublishFailed(DomainError):
    """The DNS server refused or did not answer the update: a bad gateway, not a bad request."""

    code = "dns_publish_failed"
    status = 502


class DnsUnknown(DomainError):
    """DNS did not answer (timeout, SERVFAIL): nothing can be concluded yet."""

    code = "dns_unknown"
    status = 503


# --- helpers ---------------------------------------------------------------------------------


def _audit(actor: Actor, domain: Domain, action: str, target: str, before=None, after=None):
    audit_record(
        actor=actor,
        organisation_id=domain.organisation_id,
        action=action,
        target_type="domain",
        target=target,
        before=before,
        after=after,
    )


def _lock(domain: Domain) -> Domain:
    """Serialises key and posture changes of one domain (rotation steps, stage changes)."""
    return Domain.objects.select_for_update().get(pk=domain.pk)


def _posture_for_update(domain: Domain) -> DomainPosture:
    posture, _ = DomainPosture.objects.select_for_update().get_or_create(
        domain=domain,
        defaults={**posture_defaults(domain.name), "next_check_at": timezone.now()},
    )
    return posture


def _records_changed(domain: Domain, posture: DomainPosture | None = None) -> None:
    """The expected record set changed: publish it, once committed, where allowed."""
    posture = posture or posture_of(domain)
    if posture.pk and posture.auto_publish:
        domain_id = domain.pk
        transaction.on_commit(
            lambda: events.publish_wanted.send(sender=DomainPosture, domain_id=domain_id)
        )


def dns_check_queue(*, actor: Actor, domain: Domain) -> None:
    """Check the domain's records now (in the worker), once the caller's transaction commits.
    A check writes history, may take DKIM rotation steps and mails admins: a write."""
    require_write(actor, domain.organisation_id, "That domain")
    domain_id = domain.pk
    transaction.on_commit(lambda: events.check_wanted.send(sender=Domain, domain_id=domain_id))


def _signing_changed(domain: Domain) -> None:
    """Which key OpenDKIM signs with changed: the node re-renders its KeyTable/SigningTable."""
    record_change(node_id=domain.node_id, kind=NodeChange.Kind.DKIM, object_id=domain.pk)


def _key_state(key: DkimKey) -> dict:
    return {"selector": key.selector, "algorithm": key.algorithm, "state": key.state}


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


# --- DMARC -----------------------------------------------------------------------------------


@transaction.atomic
def dmarc_set_stage(
    *, actor: Actor, domain: Domain, policy: str, pct: int = 100, force: bool = False
) -> DomainPosture:
    """Move DMARC to `policy` at `pct` %. Tightening is refused while SPF or DKIM fail.

    `force` overrides the refusal; the audit event records that it was forced and why it
    would have been refused.
    """
    require_write(actor, domain.organisation_id, "That domain")
    if policy not in dmarc.POLICIES:
        raise Invalid(f"The DMARC policy is one of {', '.join(dmarc.POLICIES)}.", field="policy")
    if not isinstance(pct, int) or isinstance(pct, bool) or not 1 <= pct <= 100:
        raise Invalid("pct is a whole number from 1 to 100.", field="pct")
    pct = 100 if policy == "none" else pct
    domain = _lock(domain)
    posture = _posture_for_update(domain)
    before = {"policy": posture.dmarc_policy, "pct": posture.dmarc_pct}
    if before == {"policy": policy, "pct": pct}:
        return posture
    blockers = []
    if dmarc.strictness(policy, pct) > dmarc.strictness(posture.dmarc_policy, posture.dmarc_pct):
        blockers = dmarc_blockers(domain)
        if blockers and not force:
            raise Conflict(
                "DMARC cannot be tightened while checks fail: " + " ".join(blockers)
                + " Fix the records and run the checks again, or force the change.",
                code="dns_checks_failing",
            )
    posture.dmarc_policy, posture.dmarc_pct = policy, pct
    posture.dmarc_changed_at = timezone.now()
    posture.save(update_fields=["dmarc_policy", "dmarc_pct", "dmarc_changed_at", "updated_at"])
    after = {"policy": policy, "pct": pct, "forced": bool(blockers), "blockers": blockers}
    _audit(actor, domain, "dmarc.stage", domain.name, before=before, after=after)
    _records_changed(domain, posture)
    return posture


# --- posture settings ------------------------------------------------------------------------


def _report_uris(raw: list[str], field: str, *, https: bool = False) -> list[str]:
    """Report URIs through the strict schema (identity.report_uris): they land in TXT records."""
    try:
        return report_uris(raw, https=https)
    except ValueError as exc:
        raise Invalid(str(exc), field=field) from None


def _deliverable(domain: Domain, uris: list[str], field: str) -> list[str]:
    """A report address in one of the organisation's own domains must not bounce: the portal
    publishes it in DNS for every receiver on the internet to send to."""
    for uri in uris:
        if uri.startswith("mailto:"):
            problem = report_address_problem(domain.organisation_id, uri.removeprefix("mailto:"))
            if problem:
                raise Invalid(problem, field=field, code="report_address_not_deliverable")
    return uris


def _alignment(raw: str, field: str) -> str:
    if raw not in ("r", "s"):
        raise Invalid("Alignment is r (relaxed) or s (strict).", field=field)
    return raw


_POSTURE_FIELDS = (
    "dmarc_rua", "dmarc_ruf", "dmarc_adkim", "dmarc_aspf", "tlsrpt_rua", "dkim_ed25519",
    "auto_publish", "publish_server", "publish_port", "publish_zone", "tsig_key_name",
    "tsig_algorithm",
)


def _posture_state(posture: DomainPosture) -> dict:
    state = {name: getattr(posture, name) for name in _POSTURE_FIELDS}
    state["tsig_secret_set"] = bool(posture.tsig_secret_encrypted)
    return state


@transaction.atomic
def posture_update(
    *,
    actor: Actor,
    domain: Domain,
    dmarc_rua: list[str] | None = None,
    dmarc_ruf: list[str] | None = None,
    dmarc_adkim: str | None = None,
    dmarc_aspf: str | None = None,
    tlsrpt_rua: list[str] | None = None,
    dkim_ed25519: bool | None = None,
    auto_publish: bool | None = None,
    publish_server: str | None = None,
    publish_port: int | None = None,
    publish_zone: str | None = None,
    tsig_key_name: str | None = None,
    tsig_algorithm: str | None = None,
    tsig_secret: str | None = None,
) -> DomainPosture:
    """Change report addresses, alignment, Ed25519 signing and publishing. None: unchanged."""
    require_write(actor, domain.organisation_id, "That domain")
    domain = _lock(domain)
    posture = _posture_for_update(domain)
    before = _posture_state(posture)
    if dmarc_rua is not None:
        posture.dmarc_rua = _deliverable(domain, _report_uris(dmarc_rua, "dmarc_rua"), "dmarc_rua")
    if dmarc_ruf is not None:
        posture.dmarc_ruf = _deliverable(domain, _report_uris(dmarc_ruf, "dmarc_ruf"), "dmarc_ruf")
    if dmarc_adkim is not None:
        posture.dmarc_adkim = _alignment(dmarc_adkim, "dmarc_adkim")
    if dmarc_aspf is not None:
        posture.dmarc_aspf = _alignment(dmarc_aspf, "dmarc_aspf")
    if tlsrpt_rua is not None:
        posture.tlsrpt_rua = _deliverable(
            domain, _report_uris(tlsrpt_rua, "tlsrpt_rua", https=True), "tlsrpt_rua"
        )
    _publishing_update(
        posture, domain, auto_publish=auto_publish, server=publish_server, port=publish_port,
        zone=publish_zone, key_name=tsig_key_name, algorithm=tsig_algorithm, secret=tsig_secret,
    )
    if dkim_ed25519 is not None and dkim_ed25519 != posture.dkim_ed25519:
        posture.dkim_ed25519 = dkim_ed25519
        _ed25519_set(actor, domain, dkim_ed25519)
    after = _posture_state(posture)
    if after == before and tsig_secret is None:
        return posture
    posture.save()
    _audit(actor, domain, "dns.settings", domain.name, before=before, after=after)
    _records_changed(domain, posture)
    return posture


def _publishing_update(posture, domain, *, auto_publish, server, port, zone, key_name,
                       algorithm, secret) -> None:
    if server is not None:
        posture.publish_server = _publish_server(server)
    if port is not None:
        if not isinstance(port, int) or not 1 <= port <= 65535:
            raise Invalid("The port is 1–65535.", field="publish_port")
        posture.publish_port = port
    if zone is not None:
        posture.publish_zone = _publish_zone(zone, domain)
    if key_name is not None:
        name = key_name.strip().lower()
        if name and not _TSIG_KEY_NAME.match(name):
            raise Invalid(
                "The TSIG key name is a DNS name, like mailhost-update.", field="tsig_key_name"
            )
        posture.tsig_key_name = name.rstrip(".")
    if algorithm is not None:
        if algorithm not in TsigAlgorithm.values:
            raise Invalid(f"The TSIG algorithm is one of {', '.join(TsigAlgorithm.values)}.",
                          field="tsig_algorithm")
        posture.tsig_algorithm = algorithm
    if secret is not None:
        posture.tsig_secret_encrypted = encrypt(_tsig_secret(secret)) if secret else ""
    if auto_publish is not None:
        posture.auto_publish = auto_publish
    if posture.auto_publish and not (
        posture.publish_server and posture.tsig_key_name and posture.tsig_secret_encrypted
    ):
        raise Invalid(
            "Automatic publishing needs the DNS server's address, a TSIG key name and its secret.",
            field="auto_publish",
        )


def _publish_server(raw: str) -> str:
    """An IP address the portal may connect to, or a host name (checked at each publish)."""
    value = raw.strip()
    if not value:
        return ""
    try:
        address = ipaddress.ip_address(value.removeprefix("[").removesuffix("]"))
    except ValueError:
        try:
            return normalise_domain(value)
        except InvalidName as exc:
            raise Invalid(
                f"The DNS server is an IP address or a host name: {exc}", field="publish_server"
            ) from None
    what = refusal(address, allowed_publish_networks())
    if what is not None:
        raise Invalid(refusal_message(str(address), what), field="publish_server",
                      code="dns_publish_target_refused")
    return str(address)


def allowed_publish_networks() -> list[Network]:
    """MAILHOST_DNS_PUBLISH_ALLOWED_NETWORKS; a bad entry (system check identity.E007) allows
    nothing rather than failing every publish."""
    networks = []
    for spec in settings.MAILHOST_DNS_PUBLISH_ALLOWED_NETWORKS:
        try:
            networks += parse_networks([spec])
        except ValueError as exc:
            logger.error("MAILHOST_DNS_PUBLISH_ALLOWED_NETWORKS: %s", exc)
    return networks


def _publish_zone(raw: str, domain: Domain) -> str:
    if not raw:
        return ""
    try:
        zone = normalise_domain(raw)
    except InvalidName as exc:
        raise Invalid(str(exc), field="publish_zone") from None
    if not (domain.name == zone or domain.name.endswith("." + zone)):
        raise Invalid(f"{domain.name} is not inside the zone {zone}.", field="publish_zone")
    return zone


def _tsig_secret(raw: str) -> bytes:
    try:
        decoded = base64.b64decode(raw.strip(), validate=True)
    except (binascii.Error, ValueError):
        decoded = b""
    if len(decoded) < 16:
        raise Invalid("The TSIG secret is base64, at least 16 bytes.", field="tsig_secret")
    return raw.strip().encode()


# --- BIMI ------------------------------------------------------------------------------------


@transaction.atomic
def bimi_upload(*, actor: Actor, domain: Domain, data: bytes) -> DomainPosture:
    """Store a BIMI logo after validating it as SVG Tiny PS; Invalid lists every reason."""
    require_write(actor, domain.organisation_id, "That domain")
    try:
        logo = bimi.validate_svg(data, max_bytes=settings.MAILHOST_BIMI_MAX_BYTES)
    except bimi.SvgRejected as exc:
        raise Invalid(
            "The logo is not SVG Tiny PS: " + " ".join(exc.reasons), field="logo",
            code="svg_rejected",
        ) from None
    domain = _lock(domain)
    posture = _posture_for_update(domain)
    before = {"sha256": posture.bimi_sha256 or None}
    posture.bimi_svg = logo.data
    posture.bimi_sha256 = hashlib.sha256(logo.data).hexdigest()
    posture.bimi_uploaded_at = timezone.now()
    posture.save(update_fields=["bimi_svg", "bimi_sha256", "bimi_uploaded_at", "updated_at"])
    after = {"sha256": posture.bimi_sha256, "title": logo.title, "bytes": len(logo.data)}
    _audit(actor, domain, "bimi.upload", domain.name, before=before, after=after)
    _records_changed(domain, posture)
    return posture


@transaction.atomic
def bimi_remove(*, actor: Actor, domain: Domain) -> DomainPosture:
    require_write(actor, domain.organisation_id, "That domain")
    domain = _lock(domain)
    posture = _posture_for_update(domain)
    if not posture.bimi_sha256:
        return posture
    before = {"sha256": posture.bimi_sha256}
    posture.bimi_svg, posture.bimi_sha256, posture.bimi_uploaded_at = None, "", None
    posture.save(update_fields=["bimi_svg", "bimi_sha256", "bimi_uploaded_at", "updated_at"])
    _audit(actor, domain, "bimi.remove", domain.name, before=before)
    _records_changed(domain, posture)
    return posture


# --- MTA-STS ---------------------------------------------------------------------------------


@transaction.atomic
def mtasts_set(
    *,
    actor: Actor,
    domain: Domain,
    mode: str | None = None,
    mx: list[str] | None = None,
    max_age: int | None = None,
) -> DomainPosture:
    """Change the MTA-STS policy; its id (in the _mta-sts record) changes with it."""
    require_write(actor, domain.organisation_id, "That domain")
    domain = _lock(domain)
    posture = _posture_for_update(domain)
    before = _mtasts_state(posture)
    if mode is not None:
        if mode not in MtaStsMode.values:
            raise Invalid(f"The mode is one of {', '.join(MtaStsMode.values)}.", field="mode")
        posture.mtasts_mode = mode
    if mx is not None:
        posture.mtasts_mx = _mx_patterns(mx)
    if max_age is not None:
        if not isinstance(max_age, int) or not 1 <= max_age <= mtasts.MAX_AGE_LIMIT:
            raise Invalid(f"max_age is 1–{mtasts.MAX_AGE_LIMIT} seconds.", field="max_age")
        posture.mtasts_max_age = max_age
    mail_host = settings.MAILHOST_HOSTNAME
    if posture.mtasts_mx and not any(mtasts.mx_matches(p, mail_host) for p in posture.mtasts_mx):
        raise Invalid(
            f"No mx pattern matches the mail host {mail_host}: senders would refuse to deliver.",
            field="mx",
        )
    after = _mtasts_state(posture)
    if after == before:
        return posture
    posture.save(update_fields=["mtasts_mode", "mtasts_mx", "mtasts_max_age", "updated_at"])
    _audit(actor, domain, "mtasts.set", domain.name, before=before, after=after)
    _records_changed(domain, posture)
    return posture


def _mtasts_state(posture: DomainPosture) -> dict:
    return {"mode": posture.mtasts_mode, "mx": posture.mtasts_mx, "max_age": posture.mtasts_max_age}


def _mx_patterns(raw: list[str]) -> list[str]:
    if not isinstance(raw, list | tuple) or len(raw) > 10:
        raise Invalid("Give up to 10 MX host names.", field="mx")
    patterns = []
    for item in raw:
        try:
            pattern = mtasts.normalise_mx_pattern(item)
        except ValueError as exc:
            raise Invalid(str(exc), field="mx") from None
        if pattern not in patterns:
            patterns.append(pattern)
    return patterns


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


# --- publishing ------------------------------------------------------------------------------


def publish_target(posture: DomainPosture) -> PublishTarget | None:
    if not (posture.publish_server and posture.tsig_key_name and posture.tsig_secret_encrypted):
        return None
    return PublishTarget(
        server=posture.publish_server,
        port=posture.publish_port,
        zone=posture.publish_zone or posture.domain.name,
        key_name=posture.tsig_key_name,
        algorithm=posture.tsig_algorithm,
        secret=decrypt(posture.tsig_secret_encrypted).decode(),
        timeout=settings.MAILHOST_DNS_PUBLISH_TIMEOUT_MS / 1000,
    )


def dns_publish(*, actor: Actor, domain: Domain) -> list[str]:
    """Publish the expected records by RFC 2136 (TSIG-signed) and remove retired ones.

    Not atomic: it waits on a DNS server. The outcome is stored and audited afterwards. A
    server the portal may not connect to is refused (422, nothing sent); any other failure is
    a 502 whose message does not tell a closed port from a silent or non-DNS one.
    """
    require_write(actor, domain.organisation_id, "That domain")
    posture = posture_of(domain)
    target = publish_target(posture) if posture.pk else None
    if target is None:
        raise Conflict("Automatic publishing is not configured for this domain.",
                       code="publishing_not_configured")
    snap = posture_snapshot(domain, posture)
    records = expected_records(snap)
    failure = None
    try:
        remove = [(r.name, r.type) for r in records_to_remove(domain, snap)]
        done = publish(
            target, records, remove=remove, ttl=settings.MAILHOST_DNS_TTL,
            resolver=default_lookup().resolver, allowed=allowed_publish_networks(),
        )
    except PublishError as exc:
        failure = exc
    _publish_record(actor=actor, domain=domain, target=target, failure=failure)
    if isinstance(failure, TargetRefused):
        raise Invalid(failure.public, field="publish_server", code="dns_publish_target_refused")
    if failure is not None:
        raise PublishFailed(failure.public)
    changed = [f"{name} {rtype}" for name, rtype, _records in done.replace]
    if done.spf_name:
        changed.append(f"{done.spf_name} TXT (SPF)")
    return changed + [f"{name} {rtype} removed" for name, rtype in done.delete]


@transaction.atomic
def _publish_record(
    *, actor: Actor, domain: Domain, target: PublishTarget, failure: PublishError | None
) -> None:
    posture = _posture_for_update(domain)
    error = failure.public if failure else ""
    if not error:
        posture.last_published_at = timezone.now()
    posture.last_publish_error = error
    posture.save(update_fields=["last_published_at", "last_publish_error"])
    after = {"server": f"{target.server}@{target.port}", "zone": target.zone, "error": error}
    _audit(actor, domain, "dns.publish", domain.name, after=after)
    if failure is not None:
        # What really happened (refused, timed out, not DNS, which address) is for staff only:
        # the organisation's own audit log would otherwise map ports for whoever reads it.
        logger.warning("DNS publish of %s failed: %s", domain.name, failure.detail)
        audit_record(
            actor=actor, organisation_id=None, action="dns.publish.failure",
            target_type="domain", target=domain.name,
            after={"organisation_id": domain.organisation_id, "detail": failure.detail},
        )
