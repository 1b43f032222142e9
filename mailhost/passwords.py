"""Mailbox passwords: generated, checked and hashed in a form Dovecot verifies.

Chosen passwords: BLF-CRYPT (bcrypt). Dovecot 2.3 verifies it natively (`{BLF-CRYPT}$2b$…`),
it is salted and tunable (MAILHOST_BCRYPT_ROUNDS, default 10), and unlike ARGON2ID it does not
make every IMAP/SMTP login allocate tens of MiB in Dovecot's auth worker (82 ms vs ~9 ms per
login at comparable settings on this class of machine). SHA512-CRYPT would need Python's
deprecated `crypt` module. bcrypt reads at most 72 bytes, so longer passwords are refused, not
truncated.

Generated passwords: SSHA512 (SHA-512 of the password and a 16-byte random salt), which Dovecot
also verifies natively. A work factor slows the guessing of a password a person chose; one of
`generate_password`'s (≥ 112 bits) cannot be guessed at any speed, so NIST SP 800-63B
§5.1.2.2 asks only for an approved one-way function there. It keeps a 10,000-mailbox bulk
create from spending 25 s of CPU on bcrypt, and every login with such a password cheap.
"""

import base64
import hashlib
import hmac
import math
import secrets
import string

import bcrypt
from django.conf import settings

from mailhost.errors import Invalid

SCHEME = "{BLF-CRYPT}"
GENERATED_SCHEME = "{SSHA512}"
SALT_BYTES = 16
MIN_LENGTH = 10
MAX_BYTES = 72
_ALPHABET = string.ascii_letters + string.digits
# Below this many bits a generated password is hashed like a chosen one (NIST SP 800-63B).
UNGUESSABLE_BITS = 112
# The shortest generated password that reaches it (19 letters and digits: 113 bits).
MIN_GENERATED_LENGTH = math.ceil(UNGUESSABLE_BITS / math.log2(len(_ALPHABET)))


def generate_password(length: int | None = None) -> str:
    """A random password from letters and digits (easy to type on a phone): ~119 bits at 20."""
    length = length or settings.MAILHOST_GENERATED_PASSWORD_LENGTH
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


def check_password_strength(raw: str) -> None:
    if not isinstance(raw, str):
        raise Invalid("The password must be text.", field="password")
    if len(raw) < MIN_LENGTH:
        raise Invalid(f"The password must be at least {MIN_LENGTH} characters.", field="password")
    if len(raw.encode()) > MAX_BYTES:
        raise Invalid(f"The password must be at most {MAX_BYTES} bytes.", field="password")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in raw):
        raise Invalid("The password may not contain control characters.", field="password")


def hash_password(raw: str, rounds: int | None = None, *, generated: bool = False) -> str:
    """`generated=True` for a password from `generate_password`: salted SHA-512 when it is long
    enough to be unguessable, else (and for every chosen password) bcrypt at MAILHOST_BCRYPT_ROUNDS
    (`rounds` overrides the cost: tests)."""
    check_password_strength(raw)
    if generated and rounds is None and _unguessable(raw):
        salt = secrets.token_bytes(SALT_BYTES)
        return GENERATED_SCHEME + base64.b64encode(_ssha512(raw.encode(), salt)).decode("ascii")
    salt = bcrypt.gensalt(settings.MAILHOST_BCRYPT_ROUNDS if rounds is None else rounds)
    return SCHEME + bcrypt.hashpw(raw.encode(), salt).decode("ascii")


def _unguessable(raw: str) -> bool:
    return len(raw) >= MIN_GENERATED_LENGTH and all(ch in _ALPHABET for ch in raw)


def _ssha512(raw: bytes, salt: bytes) -> bytes:
    """Dovecot's SSHA512 layout: the digest of password + salt, then the salt."""
    return hashlib.sha512(raw + salt).digest() + salt


def verify_password(raw: str, stored: str) -> bool:
    if not isinstance(raw, str) or not isinstance(stored, str):
        return False
    encoded = raw.encode()
    if len(encoded) > MAX_BYTES:
        return False
    if stored.startswith(GENERATED_SCHEME):
        return _verify_ssha512(encoded, stored[len(GENERATED_SCHEME):])
    if stored.startswith(SCHEME):
        return bcrypt.checkpw(encoded, stored[len(SCHEME):].encode("ascii"))
    return False


def _verify_ssha512(encoded: bytes, value: str) -> bool:
    try:
        decoded = base64.b64decode(value, validate=True)
    except ValueError:
        return False
    digest_size = hashlib.sha512().digest_size
    if len(decoded) <= digest_size:
        return False
    salt = decoded[digest_size:]
    return hmac.compare_digest(_ssha512(encoded, salt), decoded)
