"""No write transaction stays open while the code waits on the network.

On the embedded SQLite default a transaction holds the one write lock of the whole database
(IMMEDIATE mode takes it at BEGIN): a DNS lookup, an SMTP send or a broker call inside one
would stall every other writer for as long as the far end takes. This runs the flows that
talk to the network — API writes (rate limit and reconcile enqueue in Redis), the worker's
apply, RFC 2136 publishing and live DNS checks against a real Knot, the change notice over
real SMTP — and records, at every socket call, whether the calling thread's database
connection was inside a transaction.
"""

import socket
import threading
import traceback

import pytest
from django.db import connections, transaction

from identity.services import dns_check_run, dns_publish, posture_update
from mailboxes.models import Domain
from mailhost.redis import get_redis
from nodes.models import MailNode
from tenants.access import SYSTEM
from tests.api.conftest import ApiClient, make_token
from tests.dns_server import TSIG_KEY_NAME
from tests.factories import MembershipFactory, OrganisationFactory
from tests.identity.support import MAIL_HOST, PORTAL_HOST, provider_records, reverse_zones
from tests.stack import wait_for

pytestmark = [
    pytest.mark.stack, pytest.mark.dns, pytest.mark.embedded,
    pytest.mark.django_db(transaction=True),
]

WATCHED = ("connect", "connect_ex", "send", "sendall", "sendto")


@pytest.fixture
def network_calls(monkeypatch):
    """Every socket call of any thread: (method, peer, in a transaction?, where)."""
    calls: list[tuple] = []
    lock = threading.Lock()

    def watch(name: str):
        original = getattr(socket.socket, name)

        def wrapper(sock, *args, **kwargs):
            in_transaction = any(
                conn.in_atomic_block for conn in connections.all(initialized_only=True)
            )
            peer = args[-1] if name in ("connect", "connect_ex", "sendto") else _peer(sock)
            where = "".join(traceback.format_stack(limit=12)) if in_transaction else ""
            with lock:
                calls.append((name, peer, in_transaction, where))
            return original(sock, *args, **kwargs)

        monkeypatch.setattr(socket.socket, name, wrapper)

    for name in WATCHED:
        watch(name)
    return calls


def _peer(sock):
    try:
        return sock.getpeername()
    except OSError:
        return None


def test_it_holds_no_transaction_across_network_io(
    network_calls, reconcile_worker, knot, settings, mail_stack
):
    settings.MAILHOST_HOSTNAME = MAIL_HOST
    settings.MAILHOST_DNS_PUBLISH_ALLOWED_NETWORKS = ["127.0.0.1/32"]  # the Knot test server
    settings.MAILHOST_PORTAL_URL = f"https://{PORTAL_HOST}"
    settings.MAILHOST_DNS_TIMEOUT_MS, settings.MAILHOST_DNS_LIFETIME_MS = 1000, 3000
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"  # real SMTP
    server = knot({"provider.test": provider_records(), **reverse_zones(), "io.test": ""})
    settings.MAILHOST_DNS_RESOLVERS = [server.address]
    org = OrganisationFactory(slug="io")
    admin = MembershipFactory(organisation=org, role="admin").user
    admin.email = "ops@io.test"
    admin.save()
    api = ApiClient(make_token(org))

    assert api.post("/domains", {"name": "io.test"}).status_code == 201
    assert api.post("/mailboxes", {"address": "ops@io.test"}).status_code == 201
    domain = Domain.objects.get(name="io.test")
    dns_check_run(actor=SYSTEM, domain=domain)  # first verdicts: mostly "wrong"
    posture_update(
        actor=SYSTEM, domain=domain, auto_publish=True, publish_server="127.0.0.1",
        publish_port=server.port, tsig_key_name=TSIG_KEY_NAME, tsig_secret=server.key_secret,
    )
    dns_publish(actor=SYSTEM, domain=domain)
    dns_check_run(actor=SYSTEM, domain=domain)  # now "ok": the admins get a notice by SMTP
    assert api.post("/domains/io.test/dkim/rotate", {}).status_code == 201
    wait_for(lambda: (lambda n: n.applied_revision >= n.desired_revision)(
        MailNode.objects.get(pk=domain.node_id)), timeout=30)

    ports = {peer[1] for _, peer, _, _ in network_calls if isinstance(peer, tuple)}
    internal_smtp = settings.MAILHOST_PORTS["internal"]
    assert {server.port, internal_smtp} <= ports  # DNS and SMTP really happened, and Redis:
    assert any(p == int(settings.CELERY_BROKER_URL.rsplit(":", 1)[1].split("/")[0])
               for p in ports)
    held = [(name, peer, where) for name, peer, inside, where in network_calls if inside]
    assert held == [], "\n\n".join(f"{name} {peer}\n{where}" for name, peer, where in held)
    # And the watch is not blind: a broker call inside a transaction is seen as one.
    with transaction.atomic():
        get_redis().ping()
    assert network_calls[-1][2] is True
