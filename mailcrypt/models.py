from django.db import models
from django.utils import timezone

from tenants.models import Organisation


class MailCryptKey(models.Model):
    """An organisation's encryption-at-rest key pair and whether new mail is encrypted.

    Made the first time staff turn encryption on and kept when it is turned off: mail stored
    encrypted meanwhile stays readable only with this private key (docs/operations.md)."""

    organisation = models.OneToOneField(
        Organisation, on_delete=models.CASCADE, related_name="mail_crypt_key"
    )
    enabled = models.BooleanField(
        default=False, help_text="New mail of the organisation's mailboxes is stored encrypted."
    )
    private_key_encrypted = models.TextField(help_text="PEM (PKCS#8), Fernet-encrypted.")
    public_key_pem = models.TextField(help_text="PEM (SubjectPublicKeyInfo).")
    created_at = models.DateTimeField(default=timezone.now)
    changed_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.organisation} ({'on' if self.enabled else 'off'})"
