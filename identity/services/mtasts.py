"""MTA-STS and TLS-RPT: the mode and its policy id."""

from django.conf import settings
from django.db import transaction

from identity import mtasts
from identity.models import (
    DomainPosture,
    MtaStsMode,
)
from identity.services.common import _audit, _lock, _posture_for_update, _records_changed
from mailboxes.models import Domain
from mailhost.errors import Invalid
from tenants.access import Actor, require_write

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
