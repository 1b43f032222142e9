import subprocess

import pytest

from mailhost.errors import Invalid
from mailhost.passwords import generate_password, hash_password, verify_password


def doveadm_verifies(stored: str, password: str) -> bool:
    result = subprocess.run(
        ["doveadm", "pw", "-t", stored, "-p", password], capture_output=True, text=True
    )
    return result.returncode == 0 and "(verified)" in result.stdout


def test_it_produces_a_hash_real_dovecot_verifies():
    password = generate_password()
    stored = hash_password(password, rounds=5)
    assert stored.startswith("{BLF-CRYPT}$2b$05$")
    assert doveadm_verifies(stored, password)
    assert not doveadm_verifies(stored, password + "x")


def test_it_verifies_its_own_hashes():
    stored = hash_password("a long passphrase", rounds=4)
    assert verify_password("a long passphrase", stored)
    assert not verify_password("a long passphrase!", stored)


def test_it_generates_strong_distinct_passwords():
    passwords = {generate_password() for _ in range(50)}
    assert len(passwords) == 50
    assert all(len(p) == 20 and p.isalnum() for p in passwords)


@pytest.mark.parametrize(
    ("raw", "message"),
    [("short", "at least 10"), ("x" * 73, "at most 72 bytes"), ("line\nbreak!!", "control")],
)
def test_it_refuses_weak_or_unhashable_passwords(raw, message):
    with pytest.raises(Invalid, match=message):
        hash_password(raw, rounds=4)
