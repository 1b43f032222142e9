"""Forwarding's keys in the portal (routing/srs.py): staff-only, audited, one transaction with
the node change; rotation keeps the old secret verifying for the grace period."""

import datetime as dt

import pytest
from django.core.management import call_command
from django.utils import timezone

from identity.selectors import domain_records
from mailhost.crypto import decrypt
from mailhost.errors import Forbidden
from nodes.changes import node_default
from nodes.models import NodeChange
from routing.models import ArcKey, SrsSecret
from routing.srs import arc_key_rotate, forwarding_ensure, srs_prune, srs_rotate
from routing.srs_snapshot import forwarding_snapshot
from tenants.access import SYSTEM, Actor
from tenants.models import AuditEvent
from tests.factories import DomainFactory, MembershipFactory

pytestmark = pytest.mark.django_db


def _secrets() -> list[str]:
    return list(forwarding_snapshot(node_default()).srs_secrets)


def test_it_makes_a_secret_and_a_key_once():
    assert forwarding_ensure(actor=SYSTEM) == ["SRS secret", "ARC key"]
    assert forwarding_ensure(actor=SYSTEM) == []
    assert SrsSecret.objects.count() == 1 and ArcKey.objects.count() == 1
    snap = forwarding_snapshot(node_default())
    assert snap.arc.private_key_pem.startswith(b"-----BEGIN RSA PRIVATE KEY-----")
    stored = SrsSecret.objects.get().secret_encrypted
    assert snap.srs_secrets[0] not in stored  # encrypted at rest
    assert decrypt(stored).decode() == snap.srs_secrets[0]


def test_it_signs_with_the_new_secret_and_still_verifies_with_the_old_one():
    first = srs_rotate(actor=SYSTEM)
    old = decrypt(first.secret_encrypted).decode()
    second = srs_rotate(actor=SYSTEM)
    assert _secrets() == [decrypt(second.secret_encrypted).decode(), old]
    first.refresh_from_db()
    assert not first.signing and first.superseded_at is not None
    node = node_default()
    assert NodeChange.objects.filter(node=node, kind=NodeChange.Kind.FORWARDING).count() == 2
    assert AuditEvent.objects.filter(action="srs.rotate").count() == 2


def test_it_drops_a_replaced_secret_only_after_the_grace_period(settings):
    settings.MAILHOST_SRS_GRACE_DAYS = 21
    srs_rotate(actor=SYSTEM)
    srs_rotate(actor=SYSTEM)
    now = timezone.now()
    assert srs_prune(actor=SYSTEM, now=now + dt.timedelta(days=20)) == 0
    assert len(_secrets()) == 2
    assert srs_prune(actor=SYSTEM, now=now + dt.timedelta(days=22)) == 1
    assert len(_secrets()) == 1
    assert SrsSecret.objects.get().signing


def test_it_leaves_the_node_its_own_secret_until_the_portal_has_one():
    assert forwarding_snapshot(node_default()) is None


@pytest.mark.parametrize("role", ["owner", "admin", "viewer"])
def test_it_refuses_anyone_but_staff(role):
    member = Actor(user=MembershipFactory(role=role).user)
    for service in (srs_rotate, arc_key_rotate, forwarding_ensure, srs_prune):
        with pytest.raises(Forbidden):
            service(actor=member)
    assert not SrsSecret.objects.exists() and not ArcKey.objects.exists()


def test_it_publishes_the_arc_key_in_every_domains_record_set(settings):
    settings.MAILHOST_HOSTNAME = "mail.host.test"
    key = arc_key_rotate(actor=SYSTEM)
    (record,) = [r for r in domain_records(DomainFactory()) if r.key == "arc"]
    assert record.name == f"{key.selector}._domainkey.mail.host.test"
    assert record.value == f"v=DKIM1; k=rsa; p={key.public_key}"
    newer = arc_key_rotate(actor=SYSTEM)
    (record,) = [r for r in domain_records(DomainFactory()) if r.key == "arc"]
    assert record.name.startswith(newer.selector) and newer.selector != key.selector


def test_the_command_rotates_and_ensures(capsys):
    call_command("rotatesrs", "--ensure")
    assert SrsSecret.objects.count() == 1
    call_command("rotatesrs")
    assert SrsSecret.objects.count() == 2
    assert "New SRS secret signs" in capsys.readouterr().out


def test_staff_rotate_from_django_admin(admin_client):
    first = srs_rotate(actor=SYSTEM)
    response = admin_client.post("/admin/routing/srssecret/",
                                 {"action": "rotate", "_selected_action": [first.pk]})
    assert response.status_code == 302
    assert SrsSecret.objects.count() == 2
    event = AuditEvent.objects.filter(action="srs.rotate").first()
    assert event.actor_user is not None and event.actor_user.is_staff


def test_the_admin_never_shows_a_secret(admin_client):
    secret = srs_rotate(actor=SYSTEM)
    page = admin_client.get(f"/admin/routing/srssecret/{secret.pk}/change/")
    assert page.status_code == 200
    assert secret.secret_encrypted.encode() not in page.content
    assert decrypt(secret.secret_encrypted) not in page.content
