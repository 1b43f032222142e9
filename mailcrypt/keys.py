"""The organisation's mail_crypt key pair: an EC key in the PEM "pkey" forms Dovecot reads."""

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

# NIST P-521, the curve Dovecot's mail_crypt documentation uses for its EC examples.
CURVE = ec.SECP521R1


def generate_key_pair() -> tuple[bytes, bytes]:
    """A new key pair: (private key PEM, PKCS#8 unencrypted; public key PEM, SPKI)."""
    key = ec.generate_private_key(CURVE())
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private_pem, public_pem
