"""Relaying is node state: with the portal's database and Redis stopped (no web server or
worker), a hosted domain's mail still leaves through the install's default relay, logged in
and signed by us."""

import dkim
import pytest

from tests.control_plane import control_plane, throwaway_services  # noqa: F401 (fixtures)
from tests.delivery.support import published_txt
from tests.routing import fake_relay
from tests.stack import make_message, smtp_send, wait_for

pytestmark = pytest.mark.stack


@pytest.fixture
def relay_host():
    with fake_relay.running() as relay:
        yield relay


def test_it_relays_with_database_redis_and_worker_stopped(control_plane, relay_host):  # noqa: F811
    plane = control_plane(
        MAILHOST_RELAY_DEFAULT_HOST="127.0.0.1", MAILHOST_RELAY_DEFAULT_PORT=str(relay_host.port),
        MAILHOST_RELAY_DEFAULT_USERNAME="relay-user", MAILHOST_RELAY_DEFAULT_PASSWORD="relay-pass",
    )
    plane.manage("migrate", "-v0")
    plane.manage("createorg", "acme", "--name", "Acme")
    plane.manage("adddomain", "acme.test", "--org", "acme")
    password = plane.add_mailbox("alice@acme.test")
    plane.manage("stack", "start")
    plane.manage("reconcile")

    plane.stop()

    to = "bob@partner.test"
    smtp_send(plane.stack, "submission", "alice@acme.test", to,
              make_message("alice@acme.test", to, "with the portal down"),
              login=("alice@acme.test", password))
    (relayed,) = wait_for(lambda: relay_host.received_by(to), timeout=60)
    assert relayed.login == "relay-user"
    assert all(relay_host.tls_seen)
    assert b"d=acme.test" in relayed.data
    assert dkim.verify(relayed.data, dnsfunc=published_txt(plane.stack))
