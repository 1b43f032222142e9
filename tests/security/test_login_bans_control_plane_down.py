"""Bans hold on the node with the portal, worker, central database and Redis all stopped.

As in tests/reconcile/test_control_plane_down.py: a throwaway PostgreSQL and Redis hold the
portal's state, the operator commands provision a mailbox and start the node with its
production thresholds lowered through the same MAILHOST_BAN_* settings an operator sets, then
PostgreSQL and Redis are shut down and nothing of the control plane runs. The attacker then
guesses the password over IMAP from 127.0.0.9.
"""


import pytest

from tests.control_plane import control_plane, throwaway_services  # noqa: F401 (fixtures)
from tests.security.attack import imap_login, sieve_login, smtp_auth, smtp_greeting

pytestmark = pytest.mark.stack


def test_it_bans_a_guessing_address_on_every_mail_service_with_the_control_plane_down(
    control_plane,  # noqa: F811
):
    plane = control_plane(
        hostname="mail.bans.test", node={"dev": True},
        MAILHOST_STACK_DEV="true",  # relaxes 127.0.0.1 only; the attacker is 127.0.0.9
        MAILHOST_BAN_FAILURES="4",
    )
    stack = plane.stack
    plane.manage("migrate", "-v0")
    plane.manage("createorg", "acme", "--name", "Acme")
    plane.manage("adddomain", "acme.test", "--org", "acme")
    password = plane.add_mailbox("alice@acme.test")
    plane.manage("stack", "start")
    plane.manage("reconcile")
    plane.stop()

    attacker, bystander, alice = "127.0.0.9", "127.0.0.10", "alice@acme.test"
    for guess in ("123456", "password", "alice2024", "letmein"):
        assert not imap_login(stack, attacker, alice, guess)

    assert not imap_login(stack, attacker, alice, password)
    assert not smtp_auth(stack, attacker, "submission", alice, password)
    assert not smtp_auth(stack, attacker, "submissions", alice, password)
    assert not sieve_login(stack, attacker, alice, password)
    assert smtp_greeting(stack, attacker).startswith(b"421 4.7.0")

    assert imap_login(stack, bystander, alice, password)
    assert smtp_auth(stack, bystander, "submission", alice, password)
    assert smtp_greeting(stack, bystander).startswith(b"220 ")

