"""BIMI logos stored before the allow-list validator were the uploaded bytes, served verbatim.

Re-validate each one: keep its canonical re-serialisation, or remove a logo the allow-list
refuses (audited, with the reasons, so the organisation can upload a clean one). The validator
is pure and imported as it is now; a fresh database has no logos, so nothing else depends on it.
"""

import hashlib

from django.db import migrations

from identity import bimi

NO_SIZE_LIMIT = 10**9  # the size limit was applied at upload; it may have changed since


def canonicalise_logos(apps, schema_editor):
    DomainPosture = apps.get_model("identity", "DomainPosture")
    AuditEvent = apps.get_model("tenants", "AuditEvent")
    for posture in DomainPosture.objects.exclude(bimi_sha256="").select_related("domain"):
        try:
            logo = bimi.validate_svg(bytes(posture.bimi_svg or b""), max_bytes=NO_SIZE_LIMIT)
        except bimi.SvgRejected as exc:
            AuditEvent.objects.create(
                organisation_id=posture.domain.organisation_id, actor_label="system",
                action="bimi.remove", target_type="domain", target=posture.domain.name,
                before={"sha256": posture.bimi_sha256},
                after={"reason": "not SVG Tiny PS: " + " ".join(exc.reasons)[:2000]},
            )
            posture.bimi_svg, posture.bimi_sha256, posture.bimi_uploaded_at = None, "", None
        else:
            posture.bimi_svg = logo.data
            posture.bimi_sha256 = hashlib.sha256(logo.data).hexdigest()
        posture.save(update_fields=["bimi_svg", "bimi_sha256", "bimi_uploaded_at"])


class Migration(migrations.Migration):

    dependencies = [
        ("identity", "0002_posture_checks_and_dkim_lifecycle"),
        ("tenants", "0002_idempotency_records"),
    ]

    operations = [migrations.RunPython(canonicalise_logos, migrations.RunPython.noop)]
