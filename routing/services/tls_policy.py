"""Outbound TLS policy per recipient domain (staff), and the TLS outcomes collected from the
nodes' event agents (the worker)."""

import datetime as dt
import json
import sqlite3
from pathlib import Path

from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from mailhost.backend.tls_policy import POLICY_LEVELS, POLICY_TYPES, RESULT_TYPES
from mailhost.errors import Invalid, NotFound
from mailhost.names import InvalidName, normalise_domain
from nodes.changes import record_change
from nodes.models import MailNode, NodeChange
from routing.models import TlsFailure, TlsPolicy, TlsSessionCount
from tenants.access import Actor, require_staff
from tenants.audit import audit_record

BATCH = 1000


def _domain(raw: str) -> str:
    try:
        return normalise_domain(raw)
    except InvalidName as exc:
        raise Invalid(str(exc), field="domain") from None


def _changed(policy_id: int) -> None:
    # Install-wide: every node renders every policy (routing.node.tls_policy_files).
    for node_id in MailNode.objects.order_by("id").values_list("id", flat=True):
        record_change(node_id=node_id, kind=NodeChange.Kind.TLS_POLICY, object_id=policy_id)


@transaction.atomic
def tls_policy_set(*, actor: Actor, domain: str, level: str, note: str = "") -> tuple[TlsPolicy,
                                                                                       bool]:
    """Create or change the policy for mail to `domain`; returns (policy, created). Unchanged
    input changes nothing (no audit, no reconcile)."""
    require_staff(actor, "set outbound TLS policies")
    name = _domain(domain)
    if level not in POLICY_LEVELS:
        raise Invalid(f"The level is one of {', '.join(POLICY_LEVELS)}.", field="level")
    note = (note or "").strip()
    if len(note) > 200:
        raise Invalid("The note is at most 200 characters.", field="note")
    policy = TlsPolicy.objects.select_for_update().filter(domain=name).first()
    before = {"level": policy.level, "note": policy.note} if policy else None
    after = {"level": level, "note": note}
    if before == after:
        return policy, False
    if policy is None:
        policy = TlsPolicy.objects.create(domain=name, level=level, note=note)
    else:
        policy.level, policy.note, policy.updated_at = level, note, timezone.now()
        policy.save(update_fields=["level", "note", "updated_at"])
    audit_record(actor=actor, organisation_id=None, action="tls_policy.set",
                 target_type="tls_policy", target=name, before=before, after=after)
    _changed(policy.id)
    return policy, before is None


@transaction.atomic
def tls_policy_delete(*, actor: Actor, domain: str) -> TlsPolicy:
    """Remove the policy: mail to the domain follows MTA-STS and the default again."""
    require_staff(actor, "remove outbound TLS policies")
    name = _domain(domain)
    policy = TlsPolicy.objects.select_for_update().filter(domain=name).first()
    if policy is None:
        raise NotFound("There is no TLS policy for that domain.")
    audit_record(actor=actor, organisation_id=None, action="tls_policy.delete",
                 target_type="tls_policy", target=name,
                 before={"level": policy.level, "note": policy.note}, after=None)
    policy_id = policy.id
    policy.delete()
    _changed(policy_id)
    policy.id = policy_id
    return policy


# --- collection from the nodes ----------------------------------------------------------------


def _read(store: Path, sql: str, args: tuple) -> list[tuple]:
    if not store.exists():
        return []
    conn = sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=10)
    try:
        return conn.execute(sql, args).fetchall()
    except sqlite3.OperationalError:  # no table yet: the agent has not run
        return []
    finally:
        conn.close()


def _failure(node_name: str, row: tuple) -> TlsFailure:
    event_id, at, domain, mx_host, mx_ip, policy_type, policy, result, detail = row
    try:
        strings = [str(s)[:300] for s in json.loads(policy)][:50]
    except (ValueError, TypeError):
        strings = []
    return TlsFailure(
        node_name=node_name, node_event_id=event_id, at=dt.datetime.fromisoformat(at),
        domain=domain[:253], mx_host=mx_host[:253], mx_ip=mx_ip[:64],
        policy_type=policy_type if policy_type in POLICY_TYPES else "no-policy-found",
        policy_strings=strings,
        result_type=result if result in RESULT_TYPES else "validation-failure",
        detail=detail[:1000],
    )


def tls_outcomes_collect(*, node_name: str, store: Path) -> int:
    """Take the node's new TLS failures (up to BATCH) and its success counts; returns how many
    failures. Each failure is unique per node event, so a collection that dies or runs twice
    neither loses nor doubles one; the counts are the node's own totals, set, not added."""
    with transaction.atomic():
        last = TlsFailure.objects.filter(node_name=node_name).aggregate(m=Max("node_event_id"))
        rows = _read(store, "SELECT id, at, domain, mx_host, mx_ip, policy_type, policy, "
                     "result_type, detail FROM tls_failures WHERE id > ? ORDER BY id LIMIT ?",
                     (last["m"] or 0, BATCH))
        TlsFailure.objects.bulk_create([_failure(node_name, row) for row in rows],
                                       ignore_conflicts=True)
        since = (timezone.now() - dt.timedelta(days=3)).date().isoformat()
        for day, domain, successes in _read(
                store, "SELECT day, domain, successes FROM tls_sessions WHERE day >= ?",
                (since,)):
            TlsSessionCount.objects.update_or_create(
                node_name=node_name, day=dt.date.fromisoformat(day), domain=domain[:253],
                defaults={"successes": successes})
    return len(rows)
