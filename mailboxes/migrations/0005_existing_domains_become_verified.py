"""Domains hosted before ownership verification existed were live: they stay live, verified
with the method "existing". Each gets a token of its own (the column default gave every
existing row the same one)."""

import secrets

from django.db import migrations


def existing_domains_verified(apps, schema_editor):
    Domain = apps.get_model("mailboxes", "Domain")
    for domain in Domain.objects.filter(verified_at__isnull=True).iterator():
        domain.verified_at = domain.created_at
        domain.verification_method = "existing"
        domain.verification_token = secrets.token_hex(16)
        domain.save(update_fields=["verified_at", "verification_method", "verification_token"])


class Migration(migrations.Migration):
    dependencies = [("mailboxes", "0004_domain_ownership_verification")]

    operations = [
        migrations.RunPython(existing_domains_verified, migrations.RunPython.noop),
    ]
