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


def test_it_hashes_a_generated_password_with_salted_sha512_that_real_dovecot_verifies():
    password = generate_password()
    stored = hash_password(password, generated=True)
    assert stored.startswith("{SSHA512}")
    assert stored != hash_password(password, generated=True)  # salted
    assert doveadm_verifies(stored, password)
    assert not doveadm_verifies(stored, password[:-1])
    assert verify_password(password, stored)
    assert not verify_password(password + "x", stored)


@pytest.mark.parametrize("password", ["a-chosen-pass", "short1234567890ABC"])
def test_it_gives_a_guessable_generated_password_the_full_bcrypt_cost(password, settings):
    # Under 19 letters and digits (113 bits), or with other characters: not the fast scheme.
    settings.MAILHOST_BCRYPT_ROUNDS = 4
    stored = hash_password(password, generated=True)
    assert stored.startswith("{BLF-CRYPT}$2b$04$")
    assert verify_password(password, stored)


@pytest.mark.parametrize(
    "stored", ["{SSHA512}", "{SSHA512}not base64!", "{SSHA512}AAAA", "{PLAIN}secret-password",
               "secret-password"],
)
def test_it_refuses_stored_values_it_cannot_verify(stored):
    assert not verify_password("secret-password", stored)


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
