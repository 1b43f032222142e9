"""DKIM key material: generation and the DNS form of the public key. No models, no I/O."""

import base64
import datetime as dt

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

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


def generate_ed25519_key() -> tuple[bytes, str]:
    """A new Ed25519 key (RFC 8463): (private key PEM, raw 32-byte public key, base64)."""
    key = ed25519.Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public_raw = key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return private_pem, base64.b64encode(public_raw).decode("ascii")


def generate_key(algorithm: str) -> tuple[bytes, str]:
    if algorithm == "rsa":
        return generate_rsa_key()
    if algorithm == "ed25519":
        return generate_ed25519_key()
    raise ValueError(f"Unknown DKIM algorithm {algorithm!r}.")


def txt_value(algorithm: str, public_key: str) -> str:
    """The DKIM key record's TXT value (RFC 6376 3.6.1); DkimKey.txt_value and records use it."""
    return f"v=DKIM1; k={algorithm}; p={public_key}"


def parse_tags(value: str) -> dict[str, str]:
    """A DKIM/DMARC-style tag list (`a=1; b=2`) as a dict; later duplicates do not win.

    Raises ValueError for a tag without `=`. Whitespace inside values is kept; callers that
    compare base64 (p=) strip it themselves.
    """
    tags: dict[str, str] = {}
    for part in value.split(";"):
        part = part.strip()
        if not part:
            continue
        name, sep, tag_value = part.partition("=")
        if not sep:
            raise ValueError(f"{part!r} is not a tag=value pair")
        tags.setdefault(name.strip().lower(), tag_value.strip())
    return tags
