"""The From: rule holds with the whole control plane stopped.

Two organisations are provisioned with the operator commands against a throwaway PostgreSQL
and Redis of this test's own and reconciled onto a real stack started by `manage.py stack
start`; then PostgreSQL and Redis are shut down (no web server or worker runs). B's user still
cannot send as A's address with a null envelope sender, and may still send as his own.
"""

import smtplib

import pytest

from tests.control_plane import control_plane, throwaway_services  # noqa: F401 (fixtures)
from tests.security.two_tenants import signing_domains
from tests.stack import fetch_inbox_raw, make_message, smtp_send, wait_for

pytestmark = pytest.mark.stack


def test_it_refuses_another_tenants_from_with_database_redis_and_worker_stopped(
    control_plane,  # noqa: F811
):
    plane = control_plane()
    stack = plane.stack
    plane.manage("migrate", "-v0")
    plane.manage("createorg", "victim", "--name", "Victim")
    plane.manage("createorg", "attacker", "--name", "Attacker")
    plane.manage("adddomain", "victim.test", "--org", "victim")
    plane.manage("adddomain", "attacker.test", "--org", "attacker")
    plane.manage("addmailbox", "alice@victim.test")
    bob_password = plane.add_mailbox("bob@attacker.test")
    plane.manage("stack", "start")
    plane.manage("reconcile")

    plane.stop()

    bob = ("bob@attacker.test", bob_password)
    forged = make_message("alice@victim.test", "bob@attacker.test", "forged while down")
    with pytest.raises(smtplib.SMTPDataError) as excinfo:
        smtp_send(stack, "submission", "", "bob@attacker.test", forged, login=bob)
    assert excinfo.value.smtp_code == 550
    assert excinfo.value.smtp_error.startswith(b"5.7.1")

    own = make_message("bob@attacker.test", "bob@attacker.test", "own while down")
    smtp_send(stack, "submission", "", "bob@attacker.test", own, login=bob)
    (raw,) = wait_for(lambda: [m for m in fetch_inbox_raw(stack, *bob) if b"while down" in m])
    assert b"own while down" in raw
    assert "victim.test" not in signing_domains(raw)
