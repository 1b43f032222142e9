"""A DKIM rotation end to end on the real stack: the mail it sends is signed with the new key,
and verifies against the keys a real DNS server publishes."""

import re

import dkim
import pytest

from identity.services import (
    dkim_rotate_start,
    dkim_rotation_advance,
    dns_check_run,
    dns_publish,
    posture_update,
)
from mailboxes.services import domain_create, mailbox_create
from nodes.reconcile import reconcile_incremental
from tenants.access import SYSTEM
from tests.dns_server import TSIG_KEY_NAME
from tests.factories import OrganisationFactory
from tests.identity.support import fragment_for, lookup_at, portal_fetcher
from tests.stack import fetch_inbox_raw, make_message, smtp_send, unique_domain, wait_for

pytestmark = [pytest.mark.stack, pytest.mark.dns, pytest.mark.django_db]
PASSWORD = "rotation password 1"


def selector_of(raw: bytes) -> str:
    signature = re.search(rb"DKIM-Signature:.*?(?=\r\n\S)", raw, re.S).group(0)
    return re.search(rb"\bs=([a-z0-9-]+)", signature).group(1).decode()


def test_it_signs_with_the_new_key_after_a_rotation(stack_node, mail_stack, knot, settings):
    settings.MAILHOST_DKIM_SWITCH_DELAY_MINUTES = 0
    settings.MAILHOST_DNS_PUBLISH_ALLOWED_NETWORKS = ["127.0.0.1/32"]  # the test's Knot
    name = unique_domain("rot")
    domain = domain_create(actor=SYSTEM, organisation=OrganisationFactory(), name=name)
    address = f"alice@{name}"
    mailbox_create(actor=SYSTEM, domain=domain, local_part="alice", password=PASSWORD)
    server = knot({name: fragment_for(domain)})
    settings.MAILHOST_DNS_RESOLVERS = [server.address]
    lookup = lookup_at(server.address)

    def txt(record: bytes, timeout: int = 5) -> bytes | None:
        values = lookup.texts(record.decode().rstrip("."), "TXT")
        return values[0].encode() if values else None

    def send_and_fetch(subject: str, selector: str) -> bytes:
        def signed_with_selector():
            # OpenDKIM reloads its tables on USR1, asynchronously: resend until it signs so.
            message = make_message(address, address, subject)
            smtp_send(
                mail_stack, "submission", address, address, message, login=(address, PASSWORD)
            )
            raw = wait_for(
                lambda: [
                    m
                    for m in fetch_inbox_raw(mail_stack, address, PASSWORD)
                    if subject.encode() in m
                ]
            )[-1]
            return raw if selector_of(raw) == selector else None

        return wait_for(signed_with_selector, timeout=20, interval=0.3)

    reconcile_incremental(stack_node)
    old = domain.dkim_keys.get()
    before = send_and_fetch("before", old.selector)
    assert dkim.verify(before, dnsfunc=txt)

    posture_update(
        actor=SYSTEM,
        domain=domain,
        auto_publish=True,
        publish_server="127.0.0.1",
        publish_port=server.port,
        tsig_key_name=TSIG_KEY_NAME,
        tsig_secret=server.key_secret,
    )
    (new,) = dkim_rotate_start(actor=SYSTEM, domain=domain)
    dns_publish(actor=SYSTEM, domain=domain)
    dns_check_run(actor=SYSTEM, domain=domain, fetch_policy=portal_fetcher())  # seen → switch
    assert domain.dkim_keys.get(state="active").pk == new.pk
    reconcile_incremental(stack_node)

    after = send_and_fetch("after", new.selector)
    assert dkim.verify(after, dnsfunc=txt)
    assert dkim.verify(before, dnsfunc=txt)  # the old key is still published (grace period)
    assert dkim_rotation_advance(actor=SYSTEM, domain=domain) == []
