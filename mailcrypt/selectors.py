"""Reads of the encryption-at-rest state (staff's view of an organisation)."""

from mailcrypt.models import MailCryptKey
from tenants.models import Organisation


def encryption_enabled(organisation: Organisation) -> bool:
    return MailCryptKey.objects.filter(organisation=organisation, enabled=True).exists()


def encryption_state(organisation: Organisation) -> dict:
    """{"enabled": new mail is encrypted, "has_key": a key pair exists (kept when off)}."""
    key = MailCryptKey.objects.filter(organisation=organisation).first()
    return {"enabled": bool(key and key.enabled), "has_key": key is not None}
