"""Inbound authentication policy: what a domain demands of the mail it receives, sender
allow/block lists, and the mail-flow figures collected from the nodes.

Writes are keyword-only, atomic and audited, and bump the node's revision (kind "domain"), so
the reconciler re-renders the node's Rspamd settings map (`inbound/settings.conf`), which
Rspamd re-reads by itself. Nothing here runs on the mail path: the node filters from its own
rendered files with the portal, worker, central database and Redis stopped.
"""

import contextlib
import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path

from django.core.cache import cache
from django.db import transaction
from django.db.models import Sum
from django.utils import timezone
from redis.exceptions import RedisError

from identity.models import (
    InboundFlow,
    InboundPolicy,
    InboundSenderRule,
    NodeInboundStatus,
    SenderRuleKind,
)
from identity.records import PostureSnap, expected_records, zone_line
from identity.selectors import domains_postures
from mailboxes.models import Domain, Mailbox
from mailboxes.selectors import domain_get, domain_list
from mailhost.backend.inbound import (
    FLOW_DB,
    GUARD_STATUS,
    HOSTED_ZONE_FILE,
    SETTINGS_MAP,
    InboundConfig,
    InboundPolicySnap,
    SenderRule,
    render_local_data,
    render_settings_map,
)
from mailhost.backend.inbound_guard import OUTCOMES, read_flow
from mailhost.errors import Conflict, Invalid, NotFound
from mailhost.names import InvalidName, normalise_domain, split_address
from nodes.changes import record_change
from nodes.models import MailNode, NodeChange
from tenants.access import Actor, require_write
from tenants.audit import audit_record

MAX_SCORE = Decimal("1000")
MAX_RULES_PER_DOMAIN = 1000
FLOW_DAYS = 7
POLICY_FIELDS = ("require_spf", "require_dkim", "require_dmarc", "greylisting", "junk_score",
                 "reject_score")


# --- reads ------------------------------------------------------------------------------------


def inbound_policy_of(domain: Domain) -> InboundPolicy:
    """The domain's policy, or an unsaved one holding the defaults."""
    return InboundPolicy.objects.filter(domain=domain).first() or InboundPolicy(domain=domain)


def sender_rules_of(domain: Domain) -> list[InboundSenderRule]:
    return list(InboundSenderRule.objects.filter(domain=domain).order_by("mailbox", "sender"))


def policy_state(policy: InboundPolicy) -> dict:
    return {
        "require_spf": policy.require_spf,
        "require_dkim": policy.require_dkim,
        "require_dmarc": policy.require_dmarc,
        "greylisting": policy.greylisting,
        "junk_score": None if policy.junk_score is None else float(policy.junk_score),
        "reject_score": None if policy.reject_score is None else float(policy.reject_score),
    }


@dataclass(frozen=True)
class FlowDay:
    day: dt.date
    counts: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def flow_by_day(domains: list[str] | None, *, days: int = FLOW_DAYS, today=None) -> list[FlowDay]:
    """Per day (oldest first, `days` of them): messages per outcome, for `domains` (None: all
    of the node's, for staff)."""
    today = today or timezone.now().date()
    first = today - dt.timedelta(days=days - 1)
    rows = InboundFlow.objects.filter(day__gte=first)
    if domains is not None:
        rows = rows.filter(domain__in=domains)
    totals: dict[dt.date, dict[str, int]] = {first + dt.timedelta(days=i): {} for i in range(days)}
    for day, outcome, count in rows.values_list("day", "outcome").annotate(n=Sum("count")):
        totals.setdefault(day, {})[outcome] = count
    return [FlowDay(day, {o: counts.get(o, 0) for o in OUTCOMES})
            for day, counts in sorted(totals.items())]


def visible_flow_domains(actor: Actor, *, organisation=None, name: str | None = None) -> list[str]:
    """The verified domain names whose figures `actor` may see (another organisation's pending
    claim on a name never shows its mail)."""
    if name is not None:
        domain = domain_get(actor, name, organisation=organisation)
        return [domain.name] if domain.verified_at else []
    domains = domain_list(actor, organisation=organisation).filter(verified_at__isnull=False)
    return list(domains.values_list("name", flat=True))


def breaker_status(actor: Actor, *, organisation=None) -> list[NodeInboundStatus]:
    """The nodes serving the actor's domains whose greylisting fails open right now (their
    inbound guard said so); another tenant's node, and its queue length, stay unseen."""
    nodes = domain_list(actor, organisation=organisation).values("node_id")
    return list(NodeInboundStatus.objects.filter(breaker_open=True, node_id__in=nodes)
                .select_related("node"))


# --- writes -----------------------------------------------------------------------------------


def _score(value, field: str) -> Decimal | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise Invalid("A score is a number.", field=field)
    try:
        score = Decimal(str(value))
    except InvalidOperation:
        raise Invalid("A score is a number, like 6 or 7.5.", field=field) from None
    if not score.is_finite() or not Decimal("0") < score <= MAX_SCORE:
        raise Invalid(f"A score must be above 0 and at most {MAX_SCORE}.", field=field)
    return score.quantize(Decimal("0.01"))


def _audit(actor: Actor, domain: Domain, action: str, before=None, after=None) -> None:
    audit_record(actor=actor, organisation_id=domain.organisation_id, action=action,
                 target_type="domain", target=domain.name, before=before, after=after)


def _changed(domain: Domain) -> None:
    record_change(node_id=domain.node_id, kind=NodeChange.Kind.DOMAIN, object_id=domain.pk)


@transaction.atomic
def inbound_policy_update(*, actor: Actor, domain: Domain, **changes) -> InboundPolicy:
    """Change some of the domain's inbound policy fields; unknown fields are refused."""
    require_write(actor, domain.organisation_id, "That domain")
    unknown = sorted(set(changes) - set(POLICY_FIELDS))
    if unknown:
        raise Invalid(f"Unknown inbound policy field {unknown[0]!r}.", field=unknown[0])
    Domain.objects.select_for_update().get(pk=domain.pk)
    policy, _ = InboundPolicy.objects.get_or_create(domain=domain)
    before = policy_state(policy)
    for field, value in changes.items():
        if field in ("junk_score", "reject_score"):
            setattr(policy, field, _score(value, field))
        elif not isinstance(value, bool):
            raise Invalid(f"{field} is true or false.", field=field)
        else:
            setattr(policy, field, value)
    if (policy.junk_score is not None and policy.reject_score is not None
            and policy.junk_score >= policy.reject_score):
        raise Invalid("The junk score must be below the reject score.", field="junk_score")
    policy.save()
    after = policy_state(policy)
    if after != before:
        _audit(actor, domain, "inbound.policy_update", before, after)
        _changed(domain)
    return policy


def _normalise_sender(raw: str) -> str:
    """`user@example.com` or `@example.com`, lower case, IDNA: refused otherwise."""
    if not isinstance(raw, str) or not raw.strip():
        raise Invalid("Enter a sender address (user@example.com) or a domain (@example.com).",
                      field="sender")
    raw = raw.strip()
    try:
        if raw.startswith("@"):
            return "@" + normalise_domain(raw[1:])
        local, domain = split_address(raw)
    except InvalidName as exc:
        raise Invalid(str(exc), field="sender") from None
    return f"{local}@{domain}"


def _hosted_mailbox(domain: Domain, raw: str) -> str:
    if not raw:
        return ""
    try:
        local, name = split_address(raw)
    except InvalidName as exc:
        raise Invalid(str(exc), field="mailbox") from None
    exists = Mailbox.objects.filter(domain=domain, local_part=local, deleted_at=None).exists()
    if name != domain.name or not exists:
        raise Invalid(f"{raw} is not a mailbox of {domain.name}.", field="mailbox")
    return f"{local}@{name}"


@transaction.atomic
def inbound_rule_add(*, actor: Actor, domain: Domain, kind: str, sender: str,
                     mailbox: str = "") -> InboundSenderRule:
    require_write(actor, domain.organisation_id, "That domain")
    if kind not in SenderRuleKind.values:
        raise Invalid("The kind is allow or block.", field="kind")
    sender = _normalise_sender(sender)
    mailbox = _hosted_mailbox(domain, mailbox or "")
    Domain.objects.select_for_update().get(pk=domain.pk)
    if InboundSenderRule.objects.filter(domain=domain, mailbox=mailbox, sender=sender).exists():
        raise Conflict(f"{sender} is already listed for {mailbox or domain.name}.",
                       field="sender")
    if InboundSenderRule.objects.filter(domain=domain).count() >= MAX_RULES_PER_DOMAIN:
        raise Conflict(f"A domain may list at most {MAX_RULES_PER_DOMAIN} senders.")
    rule = InboundSenderRule.objects.create(domain=domain, mailbox=mailbox, kind=kind,
                                            sender=sender)
    _audit(actor, domain, "inbound.sender_add", None,
           {"kind": kind, "sender": sender, "mailbox": mailbox})
    _changed(domain)
    return rule


@transaction.atomic
def inbound_rule_remove(*, actor: Actor, domain: Domain, rule_id: int) -> None:
    require_write(actor, domain.organisation_id, "That domain")
    rule = InboundSenderRule.objects.filter(domain=domain, pk=rule_id).first()
    if rule is None:
        raise NotFound("That sender rule was not found.")
    before = {"kind": rule.kind, "sender": rule.sender, "mailbox": rule.mailbox}
    rule.delete()
    _audit(actor, domain, "inbound.sender_remove", before, None)
    _changed(domain)


@transaction.atomic
def inbound_flow_record(*, node_id: int, rows: list[tuple[str, str, str, int]],
                        status: dict | None) -> int:
    """Store what a node's counters say (they are cumulative per day: the latest value wins)
    and its circuit breaker. Telemetry: no revision, no audit event."""
    for day, domain, outcome, count in rows:
        InboundFlow.objects.update_or_create(
            node_id=node_id, day=dt.date.fromisoformat(day), domain=domain[:253],
            outcome=outcome[:20], defaults={"count": count},
        )
    if status is not None:
        NodeInboundStatus.objects.update_or_create(node_id=node_id, defaults={
            "breaker_open": bool(status.get("breaker_open")),
            "reasons": [str(r)[:300] for r in status.get("reasons") or []][:5],
            "open_since": _when(status.get("open_since")),
            "checked_at": _when(status.get("checked_at")),
            "collected_at": timezone.now(),
        })
    return len(rows)


def _when(value) -> dt.datetime | None:
    try:
        return dt.datetime.fromisoformat(value) if value else None
    except (TypeError, ValueError):
        return None


def collect_from_node(node: MailNode, *, days: int = FLOW_DAYS) -> int:
    """Read the node's counters and guard status (files in its state directory)."""
    state = Path(node.state_dir)
    since = (timezone.now().date() - dt.timedelta(days=days)).isoformat()
    rows = read_flow(state / FLOW_DB, since)
    try:
        status = json.loads((state / GUARD_STATUS).read_text())
    except (OSError, ValueError):
        status = None
    return inbound_flow_record(node_id=node.pk, rows=rows, status=status)


# --- what the node renders --------------------------------------------------------------------


def _policy_snaps(node: MailNode) -> list[InboundPolicySnap]:
    live = Domain.objects.filter(node=node, status="active", verified_at__isnull=False)
    policies = {p.domain_id: p for p in InboundPolicy.objects.filter(domain__in=live)}
    rules: dict[int, list[SenderRule]] = {}
    for rule in InboundSenderRule.objects.filter(domain__in=live):
        rules.setdefault(rule.domain_id, []).append(
            SenderRule(kind=rule.kind, sender=rule.sender, mailbox=rule.mailbox)
        )
    snaps = []
    for domain_id, name in live.filter(pk__in={*policies, *rules}).values_list("pk", "name"):
        policy = policies.get(domain_id) or InboundPolicy()
        snaps.append(InboundPolicySnap(
            domain=name, require_spf=policy.require_spf, require_dkim=policy.require_dkim,
            require_dmarc=policy.require_dmarc, greylisting=policy.greylisting,
            junk_score=None if policy.junk_score is None else float(policy.junk_score),
            reject_score=None if policy.reject_score is None else float(policy.reject_score),
            rules=tuple(rules.get(domain_id, ())),
        ))
    return snaps


# The hosted zone's lines of one domain, cached under a digest of everything they are
# rendered from (its PostureSnap and the TTL): a changed domain gets a new key, so no entry is
# ever stale, and a full pass renders (dnspython, ~1 ms a domain) only domains that changed.
ZONE_CACHE_PREFIX = "hosted-zone:v1:"
ZONE_CACHE_SECONDS = 7 * 24 * 3600  # an unused entry (its domain changed or left) goes
ZONE_CACHE_BATCH = 1000  # keys per round trip


def _hosted_zone_lines(node: MailNode, config) -> list[str]:
    """The records the portal generates for every live domain of the node, plus the mail
    host's own address: what a local-mode resolver answers (development and tests)."""
    ttl = 300
    lines = [f"{config.hostname}. {ttl} IN A 127.0.0.1"]
    live = Domain.objects.filter(node=node, status="active", verified_at__isnull=False)
    batch: list[PostureSnap] = []
    for _, snap in domains_postures(live.select_related("organisation")):
        batch.append(snap)
        if len(batch) == ZONE_CACHE_BATCH:
            lines += _zone_lines_cached(batch, ttl)
            batch = []
    lines += _zone_lines_cached(batch, ttl)
    return lines


def _zone_lines_cached(snaps: list[PostureSnap], ttl: int) -> list[str]:
    keys = [_zone_cache_key(snap, ttl) for snap in snaps]
    try:
        cached = cache.get_many(keys) if keys else {}
    except RedisError:  # the cache is a shortcut: without Redis, render everything
        cached = None
    lines, fresh = [], {}
    for key, snap in zip(keys, snaps, strict=True):
        domain_lines = None if cached is None else cached.get(key)
        if domain_lines is None:
            domain_lines = _domain_zone_lines(snap, ttl)
            fresh[key] = domain_lines
        lines += domain_lines
    if fresh and cached is not None:
        with contextlib.suppress(RedisError):
            cache.set_many(fresh, timeout=ZONE_CACHE_SECONDS)
    return lines


def _zone_cache_key(snap: PostureSnap, ttl: int) -> str:
    return ZONE_CACHE_PREFIX + hashlib.sha256(f"{ttl} {snap!r}".encode()).hexdigest()


def _domain_zone_lines(snap: PostureSnap, ttl: int) -> list[str]:
    return [
        zone_line(record, ttl=ttl)
        for record in expected_records(snap)
        # never "publish" an ownership token on the node's own resolver
        if record.key != "verification"
    ]


def node_inbound_files(node: MailNode, config) -> dict[str, bytes]:
    """{path relative to the state dir: content} of the node's per-domain inbound files."""
    inbound: InboundConfig = config.inbound
    files = {SETTINGS_MAP: render_settings_map(inbound, _policy_snaps(node)).encode()}
    if inbound.resolver_mode == "local":
        files[HOSTED_ZONE_FILE] = render_local_data(_hosted_zone_lines(node, config)).encode()
    return files


# --- the chart: a small server-rendered SVG (the portal's CSP allows no inline script) ---------

CHART_OUTCOMES = ("delivered", "junked", "greylisted", "spam_rejected", "dmarc_rejected",
                  "policy_rejected")
CHART_LABELS = {"delivered": "Delivered", "junked": "Junk", "greylisted": "Greylisted",
                "spam_rejected": "Spam refused", "dmarc_rejected": "DMARC refused",
                "policy_rejected": "Policy refused"}


@dataclass(frozen=True)
class ChartBar:
    x: int
    label: str
    total: int
    segments: tuple[tuple[str, int, int, int], ...]  # (outcome, y, height, count)


def flow_chart(days: list[FlowDay], *, height: int = 80, bar: int = 28, gap: int = 12):
    """Stacked bars per day: geometry only, the template draws the <rect>s."""
    top = max((d.total for d in days), default=0) or 1
    bars = []
    for index, day in enumerate(days):
        y, segments = height, []
        for outcome in CHART_OUTCOMES:
            count = day.counts.get(outcome, 0)
            h = round(count * height / top)
            if count and h == 0:
                h = 1
            y -= h
            if h:
                segments.append((outcome, y, h, count))
        bars.append(ChartBar(index * (bar + gap), day.day.strftime("%a"), day.total,
                             tuple(segments)))
    return {"bars": bars, "width": len(days) * (bar + gap), "height": height, "bar": bar,
            "legend": [(o, CHART_LABELS[o]) for o in CHART_OUTCOMES],
            "totals": {o: sum(d.counts.get(o, 0) for d in days) for o in OUTCOMES},
            "total": sum(d.total for d in days)}
