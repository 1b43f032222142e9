"""Once applied, mail keeps flowing with the whole control plane stopped.

A throwaway PostgreSQL and Redis of this test's own hold the portal's state; the operator
commands provision a mailbox and reconcile it onto a real stack; then PostgreSQL and Redis are
shut down (no web server or worker runs) and an external sender's mail is still delivered and
IMAP login still works.
"""

import pytest

from tests.control_plane import control_plane, throwaway_services  # noqa: F401 (fixtures)
from tests.stack import fetch_inbox, imap_login, make_message, smtp_send, wait_for

pytestmark = pytest.mark.stack


def test_it_delivers_and_serves_imap_with_database_redis_and_worker_stopped(
    control_plane,  # noqa: F811
):
    # acme has no admin with a mailbox here: its postmaster@ goes to the operator's.
    plane = control_plane(MAILHOST_OPERATOR_MAILBOX="alice@acme.test")
    stack = plane.stack
    plane.manage("migrate", "-v0")
    plane.manage("createorg", "acme", "--name", "Acme")
    plane.manage("adddomain", "acme.test", "--org", "acme")
    password = plane.add_mailbox("alice@acme.test")
    plane.manage("stack", "start")
    plane.manage("reconcile")

    plane.stop()

    smtp_send(
        stack,
        "smtp",
        "friend@outside.example",
        "alice@acme.test",
        make_message("friend@outside.example", "alice@acme.test", "still flowing"),
    )
    smtp_send(
        stack,
        "smtp",
        "reports@outside.example",
        "postmaster@acme.test",
        make_message("reports@outside.example", "postmaster@acme.test", "role routed"),
    )
    assert imap_login(stack, "alice@acme.test", password)

    def subjects():
        messages = fetch_inbox(stack, "alice@acme.test", password)
        return sorted(m["Subject"] for m in messages) if len(messages) == 2 else None

    assert wait_for(subjects, timeout=10) == ["role routed", "still flowing"]


def test_it_serves_an_encrypted_mailbox_with_the_control_plane_stopped(
    control_plane,  # noqa: F811
):
    plane = control_plane(MAILHOST_OPERATOR_MAILBOX="alice@crypt.test")
    stack = plane.stack
    plane.manage("migrate", "-v0")
    plane.manage("createorg", "crypt", "--name", "Crypt")
    plane.manage("adddomain", "crypt.test", "--org", "crypt")
    password = plane.add_mailbox("alice@crypt.test")
    plane.manage("setencryption", "crypt", "on")
    plane.manage("stack", "start")
    plane.manage("reconcile")
    before = make_message("friend@outside.example", "alice@crypt.test", "before the outage")
    smtp_send(stack, "smtp", "friend@outside.example", "alice@crypt.test", before)
    wait_for(lambda: fetch_inbox(stack, "alice@crypt.test", password), timeout=10)

    plane.stop()

    during = make_message("friend@outside.example", "alice@crypt.test", "during the outage")
    smtp_send(stack, "smtp", "friend@outside.example", "alice@crypt.test", during)

    def subjects():
        messages = fetch_inbox(stack, "alice@crypt.test", password)
        return sorted(m["Subject"] for m in messages) if len(messages) == 2 else None

    assert wait_for(subjects, timeout=10) == ["before the outage", "during the outage"]
    stored = [f.read_bytes() for f in stack.cfg.mail_root.glob("*/Maildir/*/*") if f.is_file()]
    assert len(stored) == 2
    assert all(data.startswith(b"CRYPTED") for data in stored)
    assert not any(b"outage" in data for data in stored)
