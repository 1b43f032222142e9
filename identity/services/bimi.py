"""BIMI: the logo, checked and stored."""

import hashlib

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from identity import bimi
from identity.models import (
    DomainPosture,
)
from identity.services.common import _audit, _lock, _posture_for_update, _records_changed
from mailboxes.models import Domain
from mailhost.errors import Invalid
from tenants.access import Actor, require_write

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
