"""Sending quotas hold with the whole control plane stopped.

An organisation is provisioned with the operator commands (its quota with `manage.py
sendingquota`) against a throwaway PostgreSQL and Redis of this test's own and reconciled onto
a real stack; then PostgreSQL and Redis are shut down (no web server or worker runs). The node
still counts: the organisation's hourly limit and each login's own limit refuse the next
message on SMTP submission with 451 4.7.1.
"""

import smtplib

import pytest

from tests.control_plane import control_plane, throwaway_services  # noqa: F401 (fixtures)
from tests.stack import make_message, smtp_send

pytestmark = pytest.mark.stack


def submit(stack, login: tuple[str, str], to: str, subject: str) -> None:
    smtp_send(stack, "submission", login[0], to, make_message(login[0], to, subject), login=login)


def test_it_enforces_the_hourly_and_per_login_limits_with_the_portal_stopped(
    control_plane,  # noqa: F811
):
    plane = control_plane()
    stack = plane.stack
    plane.manage("migrate", "-v0")
    plane.manage("createorg", "acme", "--name", "Acme")
    plane.manage("adddomain", "acme.test", "--org", "acme")
    alice = ("alice@acme.test", plane.add_mailbox("alice@acme.test"))
    bob = ("bob@acme.test", plane.add_mailbox("bob@acme.test"))
    out = plane.manage("sendingquota", "--org", "acme", "--hourly", "3", "--login-hourly", "2")
    assert "hourly 3" in out and "login_hourly 2" in out
    plane.manage("stack", "start")
    plane.manage("reconcile")

    plane.stop()

    submit(stack, alice, bob[0], "one")
    submit(stack, alice, bob[0], "two")
    with pytest.raises(smtplib.SMTPDataError) as per_login:
        submit(stack, alice, bob[0], "three")
    assert per_login.value.smtp_code == 451
    assert per_login.value.smtp_error.startswith(b"4.7.1")
    assert b"per login" in per_login.value.smtp_error
    submit(stack, bob, alice[0], "bob's first")  # bob's own allowance; the third of the hour
    with pytest.raises(smtplib.SMTPDataError) as hourly:
        submit(stack, bob, alice[0], "bob's second")
    assert hourly.value.smtp_code == 451
    assert b"hourly sending limit of 3 messages reached" in hourly.value.smtp_error
