"""Forwarding's keys: the SRS secrets postsrsd signs and verifies with, and the ARC key Rspamd
seals forwarded mail with (mailhost/backend/forwarding.py runs them on the node).

Services: keyword-only, one transaction each, audited, and every change recorded for the node
(`NodeChange.Kind.FORWARDING`) so the reconciler writes the secrets file and the key and
restarts postsrsd / reloads Rspamd. Install-wide: staff and operator commands only.
"""

import datetime as dt
import secrets

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from identity import dkim
from mailhost.backend.forwarding import new_secret
from mailhost.crypto import encrypt
from nodes.changes import node_default, record_change
from nodes.models import MailNode, NodeChange
from routing.models import ArcKey, SrsSecret
from tenants.access import Actor, require_staff
from tenants.audit import audit_record

SECRET_BYTES = 24


def srs_domain() -> str:
    """The SRS domain and the ARC seal's d=: MAILHOST_SRS_DOMAIN, else the mail host name."""
    return settings.MAILHOST_SRS_DOMAIN or settings.MAILHOST_HOSTNAME.lower().rstrip(".")


def _changed() -> None:
    """Every node forwards: each gets the new secrets file and key."""
    node_default()  # the default node exists before the first reconcile looks for it
    for node_id in MailNode.objects.values_list("id", flat=True):
        record_change(node_id=node_id, kind=NodeChange.Kind.FORWARDING, object_id=0)


def _audit(actor: Actor, action: str, target: str, after: dict | None = None) -> None:
    audit_record(actor=actor, organisation_id=None, action=action, target_type="forwarding",
                 target=target, after=after)


def _new_srs_secret(now: dt.datetime) -> SrsSecret:
    return SrsSecret.objects.create(
        secret_encrypted=encrypt(new_secret(secrets.token_bytes(SECRET_BYTES)).encode()),
        created_at=now,
    )


@transaction.atomic
def srs_rotate(*, actor: Actor, now: dt.datetime | None = None) -> SrsSecret:
    """A new signing secret; the one it replaces still verifies bounces to the SRS addresses
    it made until MAILHOST_SRS_GRACE_DAYS have passed (srs_prune then removes it)."""
    require_staff(actor, "rotate the SRS secret")
    now = now or timezone.now()
    replaced = SrsSecret.objects.select_for_update().filter(signing=True).update(
        signing=False, superseded_at=now
    )
    secret = _new_srs_secret(now)
    _audit(actor, "srs.rotate", "SRS secret",
           {"created_at": now.isoformat(), "replaced": replaced,
            "grace_days": settings.MAILHOST_SRS_GRACE_DAYS})
    _changed()
    return secret


@transaction.atomic
def srs_prune(*, actor: Actor, now: dt.datetime | None = None) -> int:
    """Delete replaced secrets whose grace period is over: bounces to addresses they signed
    are refused from then on. Returns how many left."""
    require_staff(actor, "prune SRS secrets")
    now = now or timezone.now()
    cutoff = now - dt.timedelta(days=settings.MAILHOST_SRS_GRACE_DAYS)
    deleted, _ = SrsSecret.objects.filter(signing=False, superseded_at__lte=cutoff).delete()
    if deleted:
        _audit(actor, "srs.prune", "SRS secret", {"deleted": deleted})
        _changed()
    return deleted


@transaction.atomic
def arc_key_rotate(*, actor: Actor, now: dt.datetime | None = None) -> ArcKey:
    """A new ARC key seals from the next reconcile on. Seals are checked when a message
    arrives, so the old key leaves with its record at once (no grace period needed)."""
    require_staff(actor, "rotate the ARC key")
    now = now or timezone.now()
    ArcKey.objects.select_for_update().filter(active=True).update(active=False)
    domain = srs_domain()
    taken = set(ArcKey.objects.filter(domain=domain).values_list("selector", flat=True))
    selector = "arc" + dkim.dated_selector(now.date(), {s[3:] for s in taken})
    private_pem, public_b64 = dkim.generate_rsa_key()
    key = ArcKey.objects.create(domain=domain, selector=selector, created_at=now,
                                private_key_encrypted=encrypt(private_pem), public_key=public_b64)
    _audit(actor, "arc.rotate", key.dns_name, {"selector": selector, "domain": domain})
    _changed()
    return key


@transaction.atomic
def forwarding_ensure(*, actor: Actor) -> list[str]:
    """Make what is missing: a signing SRS secret, an ARC key (for the SRS domain in force).
    Returns what was made; idempotent."""
    require_staff(actor, "set up forwarding keys")
    made = []
    if not SrsSecret.objects.filter(signing=True).exists():
        srs_rotate(actor=actor)
        made.append("SRS secret")
    if not ArcKey.objects.filter(active=True, domain=srs_domain()).exists():
        arc_key_rotate(actor=actor)
        made.append("ARC key")
    return made
