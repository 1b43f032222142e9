"""Backup objects: AES-256-GCM in 1 MiB chunks, so memory stays bounded whatever the size.

Format: b"MHB1", an 8-byte random nonce prefix, then records of (4-byte big-endian length,
ciphertext with its 16-byte tag). Chunk i uses the nonce prefix + i, and authenticates the
object's name, i and whether it is the last chunk: an object renamed, reordered, cut short or
with one byte flipped fails its tag, and the error names the object.

Names: content-addressed, HMAC-SHA256 of the plaintext's SHA-256 under a key derived from the
organisation's key, so the same message in two organisations has two unrelated names.
"""

import hashlib
import hmac
import io
import os
import struct
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

MAGIC = b"MHB1"
CHUNK = 1024 * 1024
KEY_BYTES = 32
_LENGTH = struct.Struct(">I")


class BackupUnreadable(Exception):
    """An object does not decrypt or does not match its name/hash."""

    def __init__(self, name: str, why: str):
        super().__init__(f"backup object {name}: {why}")
        self.name = name


def new_key() -> bytes:
    return os.urandom(KEY_BYTES)


def _subkey(key: bytes, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(key)


def object_name(key: bytes, sha256_hex: str) -> str:
    """The object's name: reveals nothing about the content to anyone without the key."""
    subkey = _subkey(key, b"mailhost-backup-name")
    return hmac.new(subkey, sha256_hex.encode(), "sha256").hexdigest()


def label_tag(key: bytes, label: str) -> str:
    """A short keyed tag for a scope label ("domain:x.test") used in manifest paths."""
    subkey = _subkey(key, b"mailhost-backup-label")
    return hmac.new(subkey, label.encode(), "sha256").hexdigest()[:24]


def _aad(name: str, index: int, final: bool) -> bytes:
    return name.encode() + struct.pack(">Q?", index, final)


def encrypt_stream(key: bytes, name: str, source: BinaryIO, target: BinaryIO) -> str:
    """Encrypt `source` into `target`; returns the plaintext's SHA-256 (hex)."""
    aead = AESGCM(_subkey(key, b"mailhost-backup-data"))
    prefix = os.urandom(8)
    target.write(MAGIC + prefix)
    digest = hashlib.sha256()
    chunk, index = source.read(CHUNK), 0
    while True:
        following = source.read(CHUNK) if chunk else b""
        final = not following
        digest.update(chunk)
        nonce = prefix + struct.pack(">I", index)
        sealed = aead.encrypt(nonce, chunk, _aad(name, index, final))
        target.write(_LENGTH.pack(len(sealed)) + sealed)
        if final:
            return digest.hexdigest()
        chunk, index = following, index + 1


def decrypt_stream(key: bytes, name: str, source: BinaryIO, target: BinaryIO | None) -> str:
    """Decrypt into `target` (None: only check); returns the plaintext's SHA-256 (hex).
    Raises BackupUnreadable naming the object on any tampering or truncation."""
    aead = AESGCM(_subkey(key, b"mailhost-backup-data"))
    header = source.read(len(MAGIC) + 8)
    if len(header) != len(MAGIC) + 8 or not header.startswith(MAGIC):
        raise BackupUnreadable(name, "not a Mailhost backup object")
    prefix, digest = header[len(MAGIC):], hashlib.sha256()
    record, index = _read_record(name, source), 0
    while record is not None:
        following = _read_record(name, source)
        nonce = prefix + struct.pack(">I", index)
        try:
            plain = aead.decrypt(nonce, record, _aad(name, index, following is None))
        except InvalidTag:
            raise BackupUnreadable(name, "fails its authentication tag (tampered, "
                                   "truncated, or another key)") from None
        digest.update(plain)
        if target is not None:
            target.write(plain)
        record, index = following, index + 1
    if index == 0:
        raise BackupUnreadable(name, "is empty")
    return digest.hexdigest()


def _read_record(name: str, source: BinaryIO) -> bytes | None:
    head = source.read(_LENGTH.size)
    if not head:
        return None
    if len(head) != _LENGTH.size:
        raise BackupUnreadable(name, "is truncated")
    (length,) = _LENGTH.unpack(head)
    if length > CHUNK + 16:
        raise BackupUnreadable(name, "has a chunk longer than any we write")
    record = source.read(length)
    if len(record) != length:
        raise BackupUnreadable(name, "is truncated")
    return record


def encrypt_bytes(key: bytes, name: str, data: bytes) -> bytes:
    out = io.BytesIO()
    encrypt_stream(key, name, io.BytesIO(data), out)
    return out.getvalue()


def decrypt_bytes(key: bytes, name: str, data: bytes) -> bytes:
    out = io.BytesIO()
    decrypt_stream(key, name, io.BytesIO(data), out)
    return out.getvalue()
