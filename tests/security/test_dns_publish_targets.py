"""SSRF through DNS publishing (issue 10, finding 7), played as the attacker.

An organisation admin controls where the portal sends its RFC 2136 update: the server (an address
or a name), the port and the key. Used as a port scanner or a pivot into the portal's own network,
that would reach loopback services, the cloud metadata address and private networks, and the
answers would say which ports are open. Every test here talks only to sockets on 127.0.0.0/8.
"""

import base64
import secrets

import pytest

from identity.models import DomainPosture
from mailhost.crypto import encrypt
from tenants.models import AuditEvent
from tests.dns_server import TSIG_KEY_NAME
from tests.identity.conftest import dns_world, domain, mail_settings, organisation  # noqa: F401
from tests.identity.support import api_for, lookup_at
from tests.security.hostile_servers import (
    Drip,
    Listener,
    NotDns,
    RebindingDns,
    Silent,
    closed_port,
)
from tests.stack import wait_for

pytestmark = [pytest.mark.dns, pytest.mark.django_db]

SETTINGS = "/domains/good.test/dns/settings"
PUBLISH = "/domains/good.test/dns/publish"
SECRET = base64.b64encode(secrets.token_bytes(32)).decode()


def publishing(server: str, port: int, secret: str = SECRET) -> dict:
    return {
        "auto_publish": True,
        "publish_server": server,
        "publish_port": port,
        "tsig_key_name": TSIG_KEY_NAME,
        "tsig_secret": secret,
    }


@pytest.fixture
def api(domain, organisation):  # noqa: F811
    return api_for(organisation)


@pytest.fixture
def no_allowed_networks(mail_settings):  # noqa: F811
    """Production: nothing internal is allowed (the test suite otherwise allows its Knot)."""
    mail_settings.MAILHOST_DNS_PUBLISH_ALLOWED_NETWORKS = []
    return mail_settings


@pytest.fixture
def listener():
    server = Listener()
    yield server
    server.close()


@pytest.mark.parametrize(
    "server",
    [
        "127.0.0.1",  # loopback: the portal's own Redis, Postgres, Knot, admin ports
        "127.0.0.2",
        "::1",
        "169.254.169.254",  # cloud metadata (link-local)
        "10.0.0.1",  # private networks
        "172.16.0.1",
        "192.168.1.1",
        "100.64.0.1",  # carrier-grade NAT (shared address space)
        "0.0.0.0",  # unspecified: connects to this host
        "224.0.0.1",  # multicast
        "240.0.0.1",  # reserved
        "fe80::1",  # IPv6 link-local
        "fd00::1",  # IPv6 unique local
        "::ffff:127.0.0.1",  # IPv4-mapped loopback
        "[::ffff:127.0.0.1]",
        "::ffff:169.254.169.254",
    ],
)
def test_it_refuses_an_internal_publish_target_the_same_way_whatever_its_port_state(
    api, no_allowed_networks, listener, server
):
    open_reply = api.send("PATCH", SETTINGS, publishing(server, listener.port))
    closed_reply = api.send("PATCH", SETTINGS, publishing(server, closed_port()))

    assert open_reply.status_code == 422, open_reply.content
    assert open_reply.json() == closed_reply.json()  # nothing tells an open port from a closed one
    assert open_reply.json()["field"] == "publish_server"
    assert "not allowed" in open_reply.json()["detail"]
    assert "MAILHOST_DNS_PUBLISH_ALLOWED_NETWORKS" in open_reply.json()["detail"]
    assert not listener.was_connected()
    posture = DomainPosture.objects.filter(domain__name="good.test").first()
    assert posture is None or posture.publish_server == ""  # nothing half-written


def test_it_refuses_a_target_stored_before_the_rules_without_connecting(
    api, domain, no_allowed_networks, listener  # noqa: F811
):
    """A row written before this fix (or before staff narrowed the allow-list) is checked again
    at every publish, not only when the settings are saved."""
    DomainPosture.objects.create(
        domain=domain, auto_publish=True, publish_server="127.0.0.1", publish_port=listener.port,
        tsig_key_name=TSIG_KEY_NAME, tsig_secret_encrypted=_encrypted(SECRET),
    )

    reply = api.send("POST", PUBLISH)

    assert reply.status_code == 422, reply.content
    assert reply.json()["code"] == "dns_publish_target_refused"
    assert not listener.was_connected()


def test_it_refuses_a_name_that_resolves_to_loopback(api, dns_world, no_allowed_networks):  # noqa: F811
    server = dns_world({"good.test": "", "attacker.test": "ns IN A 127.0.0.1\n"})
    assert api.send("PATCH", SETTINGS, publishing("ns.attacker.test", server.port,
                                                   server.key_secret)).status_code == 200
    to_knot = api.send("POST", PUBLISH)
    api.send("PATCH", SETTINGS, {"publish_port": closed_port()})
    to_closed = api.send("POST", PUBLISH)

    assert to_knot.status_code == 422, to_knot.content
    assert to_knot.json() == to_closed.json()
    assert to_knot.json()["code"] == "dns_publish_target_refused"
    assert "ns.attacker.test" in to_knot.json()["detail"]
    assert lookup_at(server.address).texts("good.test", "MX") == []  # nothing was published


def test_it_checks_every_address_of_a_name_not_just_the_first(api, dns_world, mail_settings):  # noqa: F811
    """Staff allowed 127.0.0.1 only; the name also resolves to 127.0.0.2, which is not allowed."""
    mail_settings.MAILHOST_DNS_PUBLISH_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    server = dns_world({"good.test": "", "attacker.test": "ns IN A 127.0.0.1\nns IN A 127.0.0.2\n"})
    api.send("PATCH", SETTINGS, publishing("ns.attacker.test", server.port, server.key_secret))

    reply = api.send("POST", PUBLISH)

    assert reply.status_code == 422, reply.content
    assert lookup_at(server.address).texts("good.test", "MX") == []


def test_it_connects_to_the_address_it_checked_so_dns_rebinding_cannot_swap_it(
    api, dns_world, mail_settings  # noqa: F811
):
    """The attacker's name first resolves to an allowed address, then to a forbidden one. The
    update goes to the address that was checked; the next publish sees the new answer and stops."""
    mail_settings.MAILHOST_DNS_PUBLISH_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    knot_server = dns_world({"good.test": ""})
    victim = Listener(host="127.0.0.2", port=knot_server.port)  # same port, forbidden address
    rebinding = RebindingDns("ns.rebind.test.", first="127.0.0.1", then="127.0.0.2")
    try:
        mail_settings.MAILHOST_DNS_RESOLVERS = [rebinding.address]
        api.send("PATCH", SETTINGS, publishing("ns.rebind.test", knot_server.port,
                                               knot_server.key_secret))

        first = api.send("POST", PUBLISH)
        second = api.send("POST", PUBLISH)

        assert first.status_code == 200, first.content
        assert lookup_at(knot_server.address).texts("good.test", "MX") == ["mail.provider.test"]
        assert rebinding.a_queries == 2  # one resolution per publish, never one per connection
        assert second.status_code == 422, second.content
        assert not victim.was_connected()
    finally:
        victim.close()
        rebinding.close()


@pytest.fixture
def loopback_allowed(mail_settings):  # noqa: F811
    """Staff allowed loopback: the target is reached, and then every failure must look alike."""
    mail_settings.MAILHOST_DNS_PUBLISH_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    mail_settings.MAILHOST_DNS_PUBLISH_TIMEOUT_MS = 500
    return mail_settings


def test_it_answers_alike_for_a_closed_port_a_web_server_and_a_silent_one(api, loopback_allowed):
    not_dns, silent = NotDns(), Silent()
    try:
        api.send("PATCH", SETTINGS, publishing("127.0.0.1", closed_port()))
        replies = [api.send("POST", PUBLISH)]
        for server in (not_dns, silent):
            api.send("PATCH", SETTINGS, {"publish_port": server.port})
            replies.append(api.send("POST", PUBLISH))
        assert not_dns.connections and silent.connections  # they were reached, and answered …
    finally:
        not_dns.close()
        silent.close()

    closed, web, quiet = replies
    assert closed.status_code == 502, closed.content  # … a clean gateway error, never a 500
    assert closed.json() == web.json() == quiet.json()
    assert closed.json()["code"] == "dns_publish_failed"
    events = AuditEvent.objects.filter(action="dns.publish", organisation__isnull=False)
    assert len({event.after["error"] for event in events}) == 1
    assert len(events) == 3
    last_errors = {api.get("/domains/good.test/dns").json()["publishing"]["last_publish_error"]}
    assert last_errors == {closed.json()["detail"]}
    # The operator still learns what happened: from the server log and the staff-only audit.
    details = AuditEvent.objects.filter(action="dns.publish.failure", organisation__isnull=True)
    assert len({event.after["detail"] for event in details}) == 3


def test_it_cuts_off_a_server_that_never_finishes_answering(api, loopback_allowed):
    loopback_allowed.MAILHOST_DNS_LIFETIME_MS = 20_000  # only the publish time box can end it
    drip = Drip()
    try:
        api.send("PATCH", SETTINGS, publishing("127.0.0.1", drip.port))

        reply = api.send("POST", PUBLISH)

        assert reply.status_code == 502, reply.content
        assert reply.json()["code"] == "dns_publish_failed"
        wait_for(drip.client_gone.is_set)  # the portal hung up; the server did not let go
    finally:
        drip.close()


def _encrypted(secret: str) -> str:
    return encrypt(secret.encode())
