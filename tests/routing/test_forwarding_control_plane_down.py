"""Forwarding goes on with the whole control plane stopped: SRS, the ARC seal and bounces back
to the author are node state (postsrsd and its secrets file, Rspamd and its key file).

A throwaway PostgreSQL and Redis hold the portal's state; operator commands provision a domain
with an alias that forwards to the tests' internet, make the forwarding keys, start the stack
(`manage.py stack start`) and reconcile; then PostgreSQL and Redis are shut down and no web
server or worker runs."""

import email

import dkim
import pytest

from tests.control_plane import control_plane, throwaway_services  # noqa: F401 (fixtures)
from tests.delivery import fake_mx
from tests.stack import free_ports, make_message, smtp_send, wait_for

pytestmark = pytest.mark.stack

ALIAS = (
    "from mailboxes.models import Domain; from mailboxes.services import alias_create; "
    "from tenants.access import SYSTEM; alias_create(actor=SYSTEM, "
    "domain=Domain.objects.get(name='acme.test'), local_part='old', "
    "destinations=['me@gmail.example'])"
)
ARC_RECORD = "from routing.srs_snapshot import arc_public_record; print(*arc_public_record())"


def test_it_forwards_with_srs_and_arc_and_returns_bounces_with_the_control_plane_stopped(
    control_plane, throwaway_services  # noqa: F811
):
    mx_port = free_ports(1)[0]
    plane = control_plane(MAILHOST_TEST_INTERNET_MX=f"127.0.0.1:{mx_port}")
    stack = plane.stack
    plane.manage("migrate", "-v0")
    plane.manage("createorg", "acme", "--name", "Acme")
    plane.manage("adddomain", "acme.test", "--org", "acme")
    plane.manage("shell", "-c", ALIAS)
    plane.manage("rotatesrs", "--ensure")
    name, value = plane.manage("shell", "-c", ARC_RECORD).strip().splitlines()[-1].split(" ", 1)
    plane.manage("stack", "start")
    plane.manage("reconcile")
    mx, controller = fake_mx.start("127.0.0.1", mx_port)
    try:
        plane.stop()

        author = "ceo@bank.example"
        smtp_send(stack, "smtp", author, "old@acme.test",
                  make_message(author, "old@acme.test", "quarterly figures"))
        (forwarded,) = wait_for(lambda: mx.received_by("me@gmail.example"), timeout=60)
        assert forwarded.mail_from.startswith("srs0=")
        assert forwarded.mail_from.endswith("=bank.example=ceo@mail.cp.test")
        parsed = email.message_from_bytes(forwarded.data)
        assert "d=mail.cp.test" in parsed["ARC-Seal"]
        published = {f"{name}.".encode(): value.encode()}
        cv, _, comment = dkim.arc_verify(forwarded.data,
                                         dnsfunc=lambda n, timeout=5: published.get(n))
        assert cv == dkim.CV_Pass, comment

        smtp_send(stack, "smtp", "", forwarded.mail_from,
                  make_message("mailer-daemon@gmail.example", forwarded.mail_from, "bounced"))
        (bounce,) = wait_for(lambda: mx.received_by(author), timeout=60)
        assert b"Subject: bounced" in bounce.data
    finally:
        controller.stop()
