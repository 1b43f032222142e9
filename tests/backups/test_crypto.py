"""The object format: streamed AES-256-GCM that names the object it refuses."""

import io

import pytest

from backups import crypto
from backups.crypto import BackupUnreadable, decrypt_bytes, encrypt_bytes, object_name
from backups.services import snapshots_to_keep


@pytest.fixture
def small_chunks(monkeypatch):
    monkeypatch.setattr(crypto, "CHUNK", 1000)


def test_it_round_trips_many_chunks_and_returns_the_plaintext_hash(small_chunks):
    key, data = crypto.new_key(), bytes(range(256)) * 40  # 10 chunks and a bit
    sealed = encrypt_bytes(key, "objects/x", data)
    assert data not in sealed
    out = io.BytesIO()
    sha = crypto.decrypt_stream(key, "objects/x", io.BytesIO(sealed), out)
    assert out.getvalue() == data
    assert sha == __import__("hashlib").sha256(data).hexdigest()


@pytest.mark.parametrize("where", [10, 200, -1])
def test_it_refuses_a_flipped_byte_naming_the_object(small_chunks, where):
    key = crypto.new_key()
    sealed = bytearray(encrypt_bytes(key, "objects/abc", b"m" * 5000))
    sealed[where] ^= 0x01
    with pytest.raises(BackupUnreadable, match="objects/abc") as caught:
        decrypt_bytes(key, "objects/abc", bytes(sealed))
    assert caught.value.name == "objects/abc"


def test_it_refuses_a_truncated_object_even_on_a_chunk_boundary(small_chunks):
    key = crypto.new_key()
    sealed = encrypt_bytes(key, "n", b"m" * 3000)  # 3 chunks, the last one marked final
    record = 4 + 1000 + 16
    for cut in (12, 12 + record, 12 + 2 * record, len(sealed) - 5):
        with pytest.raises(BackupUnreadable):
            decrypt_bytes(key, "n", sealed[:cut])


def test_it_refuses_another_key_and_an_object_under_another_name():
    key, other = crypto.new_key(), crypto.new_key()
    sealed = encrypt_bytes(key, "objects/a", b"secret mail")
    with pytest.raises(BackupUnreadable, match="another key"):
        decrypt_bytes(other, "objects/a", sealed)
    with pytest.raises(BackupUnreadable):
        decrypt_bytes(key, "objects/b", sealed)  # swapped in for another object


def test_it_names_the_same_message_differently_for_each_organisation():
    sha = "ab" * 32
    a, b = crypto.new_key(), crypto.new_key()
    assert object_name(a, sha) == object_name(a, sha)
    assert object_name(a, sha) != object_name(b, sha)
    assert sha not in object_name(a, sha)


def test_it_keeps_the_newest_snapshot_per_day_week_and_month():
    days = [f"202601{d:02d}T0{h}0000000000Z" for d in range(1, 32) for h in (1, 5)]
    days += ["20251215T010000000000Z", "20251101T010000000000Z"]
    keep = snapshots_to_keep(days, daily=3, weekly=2, monthly=3)
    assert keep == {
        "20260131T050000000000Z", "20260130T050000000000Z", "20260129T050000000000Z",  # days
        "20260125T050000000000Z",  # the newest of the ISO week before (Mon 19 – Sun 25)
        "20251215T010000000000Z", "20251101T010000000000Z",  # December's, November's
    }
    assert snapshots_to_keep(days, daily=0, weekly=0, monthly=0) == {"20260131T050000000000Z"}
