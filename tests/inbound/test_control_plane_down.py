"""Inbound scoring and DMARC enforcement go on with the whole control plane stopped.

A throwaway PostgreSQL and Redis of this test's own (Redis is also Rspamd's here) hold the
portal's state; the operator commands provision a mailbox and reconcile it onto a real stack
started by `manage.py stack start`; then PostgreSQL and Redis are shut down and no web server
or worker runs. Rspamd, with only its node-local files, still refuses GTUBE and a forged
p=reject sender and stamps Authentication-Results on what it lets through (greylisting, which
needs Redis, is off: the ham is accepted at the first attempt).
"""

import smtplib

import pytest

from tests.control_plane import control_plane, throwaway_services  # noqa: F401 (fixtures)
from tests.inbound.support import (
    GTUBE,
    fresh_ip,
    in_folder,
    marked,
    message,
    outside_server,
    outside_zone,
    send_from_internet,
)
from tests.stack import wait_for

pytestmark = pytest.mark.stack


def test_it_scores_and_enforces_dmarc_with_database_redis_and_worker_stopped(
    control_plane, throwaway_services  # noqa: F811
):
    plane = control_plane(MAILHOST_RSPAMD_REDIS_URL=throwaway_services["redis_url"])
    stack = plane.stack
    plane.manage("migrate", "-v0")
    plane.manage("createorg", "victim", "--name", "Victim")
    plane.manage("adddomain", "victim.test", "--org", "victim")
    password = plane.add_mailbox("ceo@victim.test")
    plane.manage("stack", "start")
    plane.manage("reconcile")
    outside_zone(stack, "bank.test", [
        'bank.test. 300 IN TXT "v=spf1 ip4:198.51.100.20 -all"',
        '_dmarc.bank.test. 300 IN TXT "v=DMARC1; p=reject"',
        "bank.test. 300 IN MX 10 mx.bank.test.",
    ])
    outside_zone(stack, "friend.test", [
        f'friend.test. 300 IN TXT "v=spf1 ip4:{(ip := fresh_ip())} -all"',
        "friend.test. 300 IN MX 10 mx.friend.test.",
    ])
    friend = outside_server(stack, "friend.test", ip)
    forger = outside_server(stack, "forger.test", fresh_ip())

    plane.stop()

    ceo = "ceo@victim.test"
    with pytest.raises(smtplib.SMTPDataError) as gtube:
        send_from_internet(stack, friend, "a@friend.test", ceo,
                           message("a@friend.test", ceo, marked("gtube"), body=GTUBE))
    assert 500 <= gtube.value.smtp_code < 600
    with pytest.raises(smtplib.SMTPDataError) as forged:
        send_from_internet(stack, forger, "payments@bank.test", ceo,
                           message("payments@bank.test", ceo, marked("wire now")))
    assert 500 <= forged.value.smtp_code < 600
    assert forged.value.smtp_error.startswith(b"5.7.1")

    subject = marked("lunch on friday")
    code, _ = send_from_internet(stack, friend, "anna@friend.test", ceo,
                                 message("anna@friend.test", ceo, subject))
    assert code == 250
    (delivered,) = wait_for(lambda: in_folder(stack, ceo, password, "INBOX", subject))
    (results,) = delivered.get_all("Authentication-Results")
    assert str(results).startswith("mail.cp.test")
    assert "spf=pass" in str(results)
