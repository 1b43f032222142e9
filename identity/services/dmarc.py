"""DMARC: the stage a domain's policy is at, and its next step."""

from django.db import transaction
from django.utils import timezone

from identity import dmarc
from identity.models import (
    DomainPosture,
)
from identity.selectors import (
    dmarc_blockers,
)
from identity.services.common import _audit, _lock, _posture_for_update, _records_changed
from mailboxes.models import Domain
from mailhost.errors import Conflict, Invalid
from tenants.access import Actor, require_write

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
