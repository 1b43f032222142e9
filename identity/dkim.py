"""DKIM key material: generation and the DNS form of the public key. No models, no I/O."""

import base64
import datetime as dt

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

RSA_BITS = 2048


def generate_rsa_key() -> tuple[bytes, str]:
    """A new RSA-2048 key: (private key PEM, public key as base64 DER for the p= tag)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS)
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    public_der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private_pem, base64.b64encode(public_der).decode("ascii")


def dated_selector(today: dt.date, taken: set[str]) -> str:
    """`mh20261121`, or `mh20261121b`, `…c` when that day's selector is taken."""
    base = f"mh{today:%Y%m%d}"
    if base not in taken:
        return base
    for suffix in "bcdefghijklmnopqrstuvwxyz":
        if base + suffix not in taken:
            return base + suffix
    raise ValueError("Too many DKIM keys generated for one domain in one day.")
