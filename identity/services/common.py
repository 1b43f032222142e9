"""What the identity services share: their errors, the domain lock, the posture row, and the
follow-ups a change asks for (publishing the records, re-rendering the signing tables)."""

import re

from django.db import transaction
from django.utils import timezone

from identity import events
from identity.models import (
    DkimKey,
    DomainPosture,
)
from identity.selectors import (
    posture_defaults,
    posture_of,
)
from mailboxes.models import Domain
from mailhost.errors import DomainError
from nodes.changes import record_change
from nodes.models import NodeChange
from tenants.access import Actor
from tenants.audit import audit_record

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


def _signing_changed(domain: Domain) -> None:
    """Which key OpenDKIM signs with changed: the node re-renders its KeyTable/SigningTable."""
    record_change(node_id=domain.node_id, kind=NodeChange.Kind.DKIM, object_id=domain.pk)


def _key_state(key: DkimKey) -> dict:
    return {"selector": key.selector, "algorithm": key.algorithm, "state": key.state}
