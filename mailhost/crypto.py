"""Encryption at rest for secrets the portal must be able to read back (DKIM private keys)."""

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings


class SecretUnreadable(Exception):
    """The stored secret does not decrypt with the configured key."""


def _fernet() -> Fernet:
    return Fernet(settings.DKIM_ENCRYPTION_KEY.encode())


def encrypt(plaintext: bytes) -> str:
    return _fernet().encrypt(plaintext).decode("ascii")


def decrypt(token: str) -> bytes:
    try:
        return _fernet().decrypt(token.encode("ascii"))
    except InvalidToken:
        raise SecretUnreadable(
            "A stored secret does not decrypt: was DKIM_ENCRYPTION_KEY changed?"
        ) from None
