"""Fixtures of the attack tests: the DNS-posture ones (a domain created the real way, with its
DKIM key, and a real Knot server answering for it), and one of each kind of object."""

import pytest
from django.utils import timezone

from delivery.models import (
    ApplicationSender,
    DeliveryEvent,
    Message,
    Suppression,
    Webhook,
    WebhookDelivery,
)
from identity.models import DkimKey
from mailboxes.models import MailboxImport
from mailhost.crypto import encrypt
from mailhost.passwords import hash_password
from routing.models import Relay, TlsPolicy
from tenants.access import SYSTEM, Actor
from tenants.models import Membership
from tenants.services import api_token_create, invitation_create
from tests.factories import AppPasswordFactory, MembershipFactory
from tests.identity.conftest import dns_world, domain, mail_settings, organisation  # noqa: F401
from tests.pages.conftest import clean_rate_limits  # noqa: F401
from tests.security.support import Everything


@pytest.fixture
def everything(domain, organisation) -> Everything:  # noqa: F811
    """One of each kind of object, so every URL has something real to name."""
    from mailboxes.services import alias_create, mailbox_create

    mailbox, _ = mailbox_create(actor=SYSTEM, domain=domain, local_part="anna",
                                password="anna-password-1")
    alias = alias_create(actor=SYSTEM, domain=domain, local_part="info",
                         destinations=["anna@good.test"])
    owner = MembershipFactory(organisation=organisation, role="owner")
    invitation, raw_invitation = invitation_create(
        actor=Actor(user=owner.user), organisation=organisation, email="new@corp.test",
        role="viewer",
    )
    token, raw_ro = api_token_create(actor=SYSTEM, organisation=organisation, name="ro",
                                     read_only=True)
    job = MailboxImport.objects.create(organisation=organisation, created_by=owner.user,
                                       filename="x.csv", total=0, source_encrypted="")
    app_password = AppPasswordFactory(mailbox=mailbox, password_hash=hash_password("x" * 20))
    key = DkimKey.objects.filter(domain=domain).first()
    message = Message.objects.create(
        organisation=organisation, domain=domain, sender=mailbox.address, subject="x",
        message_id=f"<x@{domain.name}>", size=1,
    )
    suppression = Suppression.objects.create(organisation=organisation, scope="address",
                                             value="gone@example.net", reason="manual")
    app_sender = ApplicationSender.objects.create(
        organisation=organisation, name="alerts", login="app-everything", password_hash="x",
        addresses=[f"alerts@{domain.name}"])
    hook = Webhook.objects.create(organisation=organisation, url="https://93.184.215.14/hook",
                                  secret=encrypt(b"whsec_everything"))
    event = DeliveryEvent.objects.create(
        message=message, node_name="everything", node_event_id=1, recipient="x@example.net",
        status="bounced", at=timezone.now(), source="log")
    hook_delivery = WebhookDelivery.objects.create(
        webhook=hook, event=event, payload={"id": f"evt_{event.pk}", "type": "message.bounced"},
        state="dead", attempts=8)
    tls_policy = TlsPolicy.objects.create(domain=domain.name, level="secure")
    relay = Relay.objects.create(organisation=organisation, domain=domain,
                                 host="smtp.relay.example", port=587)
    values = {
        "domain": tls_policy.domain,
        "org": organisation.slug, "name": domain.name, "address": mailbox.address,
        "token": raw_invitation, "selector": key.selector, "path": "x", "rest": "x",
        "key": "x", "uidb36": "x", "uidb64": "x", "app_label": "tenants",
        "pk": Membership.objects.get(user=owner.user).pk, "ip": "192.0.2.1",
        "slug": organisation.slug, "message_id": message.id.hex, "value": suppression.value,
        "login": app_sender.login, "webhook_id": hook.pk, "delivery_id": hook_delivery.pk,
        "relay_id": relay.pk, "queue_id": "0123456789A", "action": "hold",
    }
    by_name = {
        "mailboxes:alias": {"address": alias.address},
        "mailboxes:alias_delete": {"address": alias.address},
        "tenants:invitation_revoke": {"pk": invitation.pk},
        "tenants:token_revoke": {"pk": token.pk},
        "mailboxes:import": {"pk": job.pk},
        "mailboxes:import_passwords": {"pk": job.pk},
        "mailboxes:app_password_revoke": {"pk": app_password.pk},
        "mailbox:app_password_revoke": {"pk": app_password.pk},
    }
    return Everything(values, by_name, raw_ro, "anna-password-1")
