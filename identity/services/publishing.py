"""Publishing records by RFC 2136, and notices of DNS changes to make by hand."""

import logging

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from identity.models import (
    DomainPosture,
)
from identity.publish import (
    PublishError,
    PublishTarget,
    TargetRefused,
    publish,
)
from identity.records import expected_records
from identity.selectors import (
    posture_of,
    posture_snapshot,
    records_to_remove,
)
from identity.services.checks import default_lookup
from identity.services.common import PublishFailed, _audit, _posture_for_update
from identity.services.posture import allowed_publish_networks
from mailboxes.models import Domain
from mailhost.crypto import decrypt
from mailhost.errors import Conflict, Invalid
from tenants.access import Actor, require_write
from tenants.audit import audit_record

logger = logging.getLogger(__name__)


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
