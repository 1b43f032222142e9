"""The DKIM rotation lifecycle: generate → publish → seen in DNS → switch → grace → retire."""

import datetime as dt

import dkim
import dns.resolver
import pytest
from django.utils import timezone

from identity.models import DkimKey, DkimKeyState
from identity.selectors import dkim_signing_keys
from identity.services import (
    dkim_retire,
    dkim_rotate_start,
    dkim_rotation_advance,
    dns_check_run,
    dns_publish,
    posture_update,
)
from mailhost.crypto import decrypt
from mailhost.errors import Conflict
from nodes.models import NodeChange
from tenants.access import SYSTEM
from tenants.models import AuditEvent
from tests.dns_server import TSIG_KEY_NAME
from tests.identity.support import fragment_for, lookup_at, portal_fetcher

pytestmark = pytest.mark.django_db

MESSAGE = (
    b"From: Alice <alice@good.test>\r\nTo: bob@example.net\r\nSubject: rotation\r\n"
    b"Date: Sat, 21 Nov 2026 12:00:00 +0000\r\nMessage-ID: <rotation@good.test>\r\n\r\n"
    b"Signed with whichever key is active.\r\n"
)


def keys(domain) -> dict[str, str]:
    return dict(domain.dkim_keys.values_list("selector", "state"))


def sign(key: DkimKey) -> bytes:
    signature = dkim.sign(
        MESSAGE,
        key.selector.encode(),
        key.domain.name.encode(),
        decrypt(key.private_key_encrypted),
        include_headers=[b"From", b"To", b"Subject"],
    )
    return signature + MESSAGE


def verify_against(server, message: bytes) -> bool:
    lookup = lookup_at(server.address)

    def txt(name: bytes, timeout: int = 5) -> bytes | None:
        values = lookup.texts(name.decode().rstrip("."), "TXT")
        return values[0].encode() if values else None

    return dkim.verify(message, dnsfunc=txt)


def enable_publishing(domain, server) -> None:
    posture_update(
        actor=SYSTEM,
        domain=domain,
        auto_publish=True,
        publish_server="127.0.0.1",
        publish_port=server.port,
        tsig_key_name=TSIG_KEY_NAME,
        tsig_secret=server.key_secret,
    )


def test_it_starts_a_rotation_with_a_pending_key_and_refuses_a_second_one(domain):
    old = domain.dkim_keys.get()
    (new,) = dkim_rotate_start(actor=SYSTEM, domain=domain)
    assert new.state == DkimKeyState.PENDING and new.algorithm == "rsa"
    assert new.selector == old.selector + "b"  # dated selectors, same day: the next letter
    assert keys(domain)[old.selector] == "active"
    with pytest.raises(Conflict, match="already in progress") as caught:
        dkim_rotate_start(actor=SYSTEM, domain=domain)
    assert caught.value.code == "rotation_in_progress"
    assert AuditEvent.objects.filter(action="dkim.rotate").count() == 1


def test_it_does_not_switch_before_the_new_key_is_seen_in_dns(domain):
    old = domain.dkim_keys.get()
    dkim_rotate_start(actor=SYSTEM, domain=domain)
    assert dkim_rotation_advance(actor=SYSTEM, domain=domain) == []
    assert keys(domain)[old.selector] == "active"


def test_it_switches_when_forced_and_records_that_it_was_forced(domain):
    old = domain.dkim_keys.get()
    (new,) = dkim_rotate_start(actor=SYSTEM, domain=domain)
    revision = domain.node.desired_revision
    steps = dkim_rotation_advance(actor=SYSTEM, domain=domain, force=True)
    assert steps == [
        f"{new.selector} published",
        f"{new.selector} signing, {old.selector} retiring",
    ]
    assert keys(domain) == {old.selector: "retiring", new.selector: "active"}
    change = NodeChange.objects.filter(kind="dkim", object_id=domain.pk).latest("revision")
    assert change.revision > revision
    assert AuditEvent.objects.get(action="dkim.advance").after["forced"] is True


def test_it_retires_the_old_key_only_after_the_grace_period(domain, mail_settings):
    mail_settings.MAILHOST_DKIM_GRACE_DAYS = 7
    old = domain.dkim_keys.get()
    dkim_rotate_start(actor=SYSTEM, domain=domain)
    dkim_rotation_advance(actor=SYSTEM, domain=domain, force=True)
    soon = timezone.now() + dt.timedelta(days=6)
    assert dkim_rotation_advance(actor=SYSTEM, domain=domain, now=soon) == []
    later = timezone.now() + dt.timedelta(days=7, minutes=1)
    assert dkim_rotation_advance(actor=SYSTEM, domain=domain, now=later) == [
        f"{old.selector} retired"
    ]
    old.refresh_from_db()
    assert old.state == "retired" and old.private_key_encrypted == ""


def test_it_refuses_to_retire_the_signing_key_and_abandons_a_pending_one(domain):
    active = domain.dkim_keys.get()
    with pytest.raises(Conflict, match="is signing mail"):
        dkim_retire(actor=SYSTEM, domain=domain, selector=active.selector)
    (pending,) = dkim_rotate_start(actor=SYSTEM, domain=domain)
    dkim_retire(actor=SYSTEM, domain=domain, selector=pending.selector)
    assert keys(domain)[pending.selector] == "retired"
    dkim_rotate_start(actor=SYSTEM, domain=domain)  # a new rotation may start again


def test_it_signs_with_ed25519_alongside_rsa_once_that_key_is_seen(domain):
    posture_update(actor=SYSTEM, domain=domain, dkim_ed25519=True)
    ed = domain.dkim_keys.get(algorithm="ed25519")
    assert ed.state == "pending"
    dkim_rotation_advance(actor=SYSTEM, domain=domain, force=True)
    assert [k.algorithm for k in dkim_signing_keys(domain)] == ["rsa", "ed25519"]
    posture_update(actor=SYSTEM, domain=domain, dkim_ed25519=False)
    assert [k.algorithm for k in dkim_signing_keys(domain)] == ["rsa"]
    assert keys(domain)[ed.selector] == "retiring"


@pytest.mark.dns
def test_it_rotates_end_to_end_through_dns_and_the_new_key_verifies(knot, mail_settings, domain):
    """Publish by RFC 2136, see it in DNS, switch, sign and verify with the new key, keep the old
    one verifiable during the grace period, then retire and remove it."""
    server = knot({"good.test": fragment_for(domain)})
    mail_settings.MAILHOST_DNS_RESOLVERS = [server.address]
    enable_publishing(domain, server)
    old = domain.dkim_keys.get()
    signed_by_old = sign(old)

    (new,) = dkim_rotate_start(actor=SYSTEM, domain=domain)
    dns_check_run(actor=SYSTEM, domain=domain, fetch_policy=portal_fetcher())
    assert keys(domain)[new.selector] == "pending"  # not in DNS yet: nothing moves

    dns_publish(actor=SYSTEM, domain=domain)
    dns_check_run(actor=SYSTEM, domain=domain, fetch_policy=portal_fetcher())
    assert keys(domain) == {old.selector: "retiring", new.selector: "active"}
    (signing,) = dkim_signing_keys(domain)
    assert signing.selector == new.selector
    assert NodeChange.objects.filter(kind="dkim", object_id=domain.pk).count() == 2

    signed_by_new = sign(signing)
    assert f"s={new.selector}".encode() in signed_by_new
    assert verify_against(server, signed_by_new)
    assert verify_against(server, signed_by_old)  # still published in the grace period

    later = timezone.now() + dt.timedelta(days=mail_settings.MAILHOST_DKIM_GRACE_DAYS, minutes=1)
    dkim_rotation_advance(actor=SYSTEM, domain=domain, now=later)
    dns_publish(actor=SYSTEM, domain=domain)
    with pytest.raises(dns.resolver.NXDOMAIN):
        lookup_at(server.address).resolver.resolve(f"{old.selector}._domainkey.good.test", "TXT")
    assert not verify_against(server, signed_by_old)
    assert verify_against(server, signed_by_new)


def test_it_lists_a_retired_key_as_a_record_to_remove(domain):
    from identity.selectors import dns_overview

    (pending,) = dkim_rotate_start(actor=SYSTEM, domain=domain)
    dkim_retire(actor=SYSTEM, domain=domain, selector=pending.selector)
    remove = dns_overview(SYSTEM, "good.test").remove
    assert [(r.name, r.type, r.reason) for r in remove] == [
        (f"{pending.selector}._domainkey.good.test", "TXT", "retired DKIM key")
    ]
    assert f"dkim:{pending.selector}" not in {
        r.key for r in dns_overview(SYSTEM, "good.test").records
    }
