"""Relays against the real node: a hosted domain's mail leaves through its smarthost (a fake
relay with STARTTLS and AUTH), logged in and signed by us; wrong credentials defer it with the
relay's reply; a domain without a relay still goes direct."""

import grp
import subprocess

import dkim
import pytest

from mailhost.errors import Invalid
from nodes.reconcile import reconcile_incremental
from routing.queue import queue_entries
from routing.services import RelayInput, relay_delete, relay_set
from tenants.access import SYSTEM
from tests.delivery.support import internet_address, published_txt
from tests.factories import MembershipFactory
from tests.inbound.conftest import PASSWORD
from tests.stack import make_message, smtp_send, unique_domain, wait_for

pytestmark = pytest.mark.stack


def postsuper(node, queue_id: str) -> None:
    """Delete a test's stuck message from the shared node's queue."""
    subprocess.run(["postsuper", "-c", f"{node.state_dir}/postfix", "-d", queue_id],
                   capture_output=True, check=True)


def far_address(local: str = "friend") -> str:
    """A recipient anywhere but *.example (the harness's direct route): relays carry it."""
    return f"{local}@{unique_domain('far')}"


def send(hosted, to: str, subject: str) -> None:
    sender = hosted.address("ceo")
    smtp_send(hosted.stack, "submission", sender, to, make_message(sender, to, subject),
              login=(sender, PASSWORD))


def use_relay(hosted, relay_host, *, password="relay-pass", organisation_wide=False):
    relay, _ = relay_set(
        actor=SYSTEM, organisation=hosted.domain.organisation,
        domain=None if organisation_wide else hosted.domain,
        data=RelayInput(host="127.0.0.1", port=relay_host.port, username="relay-user",
                        password=password))
    reconcile_incremental(hosted.node)
    return relay


def test_it_sends_through_the_relay_logged_in_over_tls_and_signed_by_us(
        hosted_domains, relay_host, mail_stack):
    hosted = hosted_domains(prefix="rl")
    use_relay(hosted, relay_host)
    to = far_address()

    send(hosted, to, "through the relay")

    (relayed,) = wait_for(lambda: relay_host.received_by(to), timeout=30)
    assert relayed.login == "relay-user"
    assert relayed.mail_from == hosted.address("ceo")
    assert all(relay_host.tls_seen)
    assert dkim.verify(relayed.data, dnsfunc=published_txt(mail_stack))
    assert f"d={hosted.name}".encode() in relayed.data


def test_an_organisation_relay_carries_every_domain_without_its_own(
        hosted_domains, relay_host):
    hosted = hosted_domains(prefix="ro")
    use_relay(hosted, relay_host, organisation_wide=True)
    to = far_address()

    send(hosted, to, "organisation relay")

    assert wait_for(lambda: relay_host.received_by(to), timeout=30)


def test_wrong_credentials_defer_with_the_relays_reply_in_the_queue(
        hosted_domains, relay_host, stack_node, client):
    hosted = hosted_domains(prefix="rw")
    use_relay(hosted, relay_host, password="not-the-password")
    to = far_address()

    send(hosted, to, "wrong login")

    def deferred():
        return [e for e in queue_entries(stack_node)
                if e.sender == hosted.address("ceo") and e.queue == "deferred"
                and "535" in e.reason]
    (entry,) = wait_for(deferred, timeout=30)
    assert "authentication failed" in entry.reason.lower()
    assert ("relay-user", False) in relay_host.logins
    assert not relay_host.received_by(to)
    organisation = hosted.domain.organisation
    client.force_login(MembershipFactory(organisation=organisation, role="viewer").user)
    page = client.get(f"/mail-admin/{organisation.slug}/queue/", {"queue": "deferred"})
    assert entry.queue_id.encode() in page.content
    assert b"535 5.7.8 Authentication credentials invalid" in page.content
    postsuper(stack_node, entry.queue_id)


def test_a_domain_without_a_relay_goes_direct(hosted_domains, relay_host, internet):
    with_relay, direct = hosted_domains(prefix="ry"), hosted_domains(prefix="rn")
    use_relay(with_relay, relay_host)
    to = internet_address("direct")

    send(direct, to, "direct")

    assert wait_for(lambda: internet.received_by(to), timeout=30)
    assert not relay_host.messages


def test_removing_the_relay_sends_direct_again(hosted_domains, relay_host, mail_stack):
    hosted = hosted_domains(prefix="rr")
    relay = use_relay(hosted, relay_host)
    relay_delete(actor=SYSTEM, organisation=hosted.domain.organisation, relay_id=relay.pk)
    reconcile_incremental(hosted.node)

    hosts = mail_stack.cfg.path("postfix/relay-hosts").read_text()
    assert f"@{hosted.name} " not in hosts


def test_the_password_table_is_for_postfix_alone(hosted_domains, relay_host, mail_stack):
    hosted = hosted_domains(prefix="rp")
    use_relay(hosted, relay_host)
    table = mail_stack.cfg.path("postfix/relay-passwords")
    assert "relay-user:relay-pass" in table.read_text()
    info = table.stat()
    assert info.st_mode & 0o777 == 0o640
    assert (info.st_uid, info.st_gid) == (0, grp.getgrnam("postfix").gr_gid)
    assert "relay-pass" not in hosted.domain.organisation.relays.get().password_encrypted


@pytest.mark.parametrize("host", ["127.0.0.1", "10.0.0.5", "localhost.localdomain", "[::1]"])
def test_it_refuses_a_relay_inside_the_mail_hosts_network(hosted_domains, host):
    hosted = hosted_domains(prefix="rx")
    with pytest.raises(Invalid) as refused:
        relay_set(actor=SYSTEM, organisation=hosted.domain.organisation, domain=hosted.domain,
                  data=RelayInput(host=host, port=25))
    assert refused.value.field == "host"
