"""An address that guesses passwords is banned from every mail service, on the node itself.

Each test acts as the attacker: it connects from its own loopback address (127.0.0.9, …), fails
logins, then tries the RIGHT password, and asserts what the attacker and the victim see.
"""

import pytest

from tests.dav.support import dav
from tests.security.attack import imap_login, sieve_login, smtp_auth, smtp_greeting
from tests.security.bans_support import (
    PASSWORD,
    ban_node,  # noqa: F401  (fixture)
    ban_stack,  # noqa: F401  (fixture)
    set_policy,
    victim,
)
from tests.stack import wait_for

pytestmark = pytest.mark.stack

FAILURES = 3  # bans_support.TEST_BAN_SETTINGS


def test_it_bans_an_address_that_fails_imap_logins_from_every_mail_service(ban_stack):  # noqa: F811
    address = victim(ban_stack)
    attacker, bystander = "127.0.0.21", "127.0.0.22"
    for _ in range(FAILURES):
        assert not imap_login(ban_stack, attacker, address, "guess")

    assert not imap_login(ban_stack, attacker, address, PASSWORD)
    assert not smtp_auth(ban_stack, attacker, "submission", address, PASSWORD)
    assert not smtp_auth(ban_stack, attacker, "submissions", address, PASSWORD)
    assert not sieve_login(ban_stack, attacker, address, PASSWORD)
    assert smtp_greeting(ban_stack, attacker).startswith(b"421 4.7.0")

    assert imap_login(ban_stack, bystander, address, PASSWORD)
    assert smtp_auth(ban_stack, bystander, "submission", address, PASSWORD)
    assert sieve_login(ban_stack, bystander, address, PASSWORD)
    assert smtp_greeting(ban_stack, bystander).startswith(b"220 ")


def test_it_counts_smtp_auth_and_managesieve_failures_with_imap_ones(ban_stack):  # noqa: F811
    address = victim(ban_stack)
    attacker = "127.0.0.23"
    assert not smtp_auth(ban_stack, attacker, "submissions", address, "guess-1")
    assert not sieve_login(ban_stack, attacker, address, "guess-2")
    assert imap_login(ban_stack, attacker, address, PASSWORD)  # two failures: not yet banned
    assert not smtp_auth(ban_stack, attacker, "submission", address, "guess-3")

    assert not imap_login(ban_stack, attacker, address, PASSWORD)
    assert smtp_greeting(ban_stack, attacker).startswith(b"421 ")


def test_it_lets_a_banned_address_in_again_when_the_ban_ends(ban_node, settings):  # noqa: F811
    set_policy(ban_node, settings, MAILHOST_BAN_SECONDS=2)
    try:
        address = victim(ban_node)
        attacker = "127.0.0.24"
        for _ in range(FAILURES):
            assert not imap_login(ban_node, attacker, address, "guess")
        assert not imap_login(ban_node, attacker, address, PASSWORD)

        assert wait_for(lambda: imap_login(ban_node, attacker, address, PASSWORD), timeout=20)
        assert smtp_greeting(ban_node, attacker).startswith(b"220 ")
        assert smtp_auth(ban_node, attacker, "submission", address, PASSWORD)
    finally:
        set_policy(ban_node, settings, MAILHOST_BAN_SECONDS=600)


def test_it_throttles_an_account_under_attack_but_never_locks_its_owner_out(ban_node, capsys):  # noqa: F811
    from django.core.management import call_command

    address = victim(ban_node)
    # Many addresses, each below the ban threshold, all guessing the victim's password.
    for attacker in ("127.0.0.31", "127.0.0.32", "127.0.0.33"):
        for _ in range(FAILURES - 1):
            assert not imap_login(ban_node, attacker, address, "guess")

    call_command("bans", "list")
    assert f"throttled {address}\t6 failures from 3 addresses" in capsys.readouterr().out
    # The owner, from an address of their own, still gets in with the right password.
    assert imap_login(ban_node, "127.0.0.34", address, PASSWORD)
    assert smtp_auth(ban_node, "127.0.0.34", "submission", address, PASSWORD)
    # And so does the attacker's neighbour who never failed: a throttle is not a ban.
    assert smtp_greeting(ban_node, "127.0.0.35").startswith(b"220 ")


def dav_status(stack, source: str, address: str, password: str, **headers) -> int:
    """PROPFIND on the DAV root through the edge, from `source`."""
    return dav(stack, "PROPFIND", "/dav/", user=address, password=password, source=source,
               headers={"Depth": "0", **headers}).status


def test_it_bans_an_address_that_guesses_calendar_passwords_from_mail_too(ban_stack):  # noqa: F811
    address = victim(ban_stack)
    attacker, bystander = "127.0.0.25", "127.0.0.26"
    # The attacker names the bystander in X-Remote-Addr: the edge overwrites it with what it
    # saw, so the failures (and the ban) stay with the attacker.
    for _ in range(FAILURES):
        assert dav_status(ban_stack, attacker, address, "guess", **{"X-Remote-Addr": bystander}
                          ) == 401

    assert dav_status(ban_stack, attacker, address, PASSWORD) == 401
    assert not imap_login(ban_stack, attacker, address, PASSWORD)
    assert smtp_greeting(ban_stack, attacker).startswith(b"421 4.7.0")

    assert dav_status(ban_stack, bystander, address, PASSWORD) == 207
    assert imap_login(ban_stack, bystander, address, PASSWORD)


def test_imap_guesses_ban_an_address_from_calendars_too(ban_stack):  # noqa: F811
    address = victim(ban_stack)
    attacker = "127.0.0.27"
    for _ in range(FAILURES):
        assert not imap_login(ban_stack, attacker, address, "guess")

    assert dav_status(ban_stack, attacker, address, PASSWORD) == 401
