"""Turning an organisation's encryption at rest on and off (staff only; audited)."""

from django.db import transaction
from django.utils import timezone

from mailcrypt.keys import generate_key_pair
from mailcrypt.models import MailCryptKey
from mailhost import crypto
from nodes.changes import record_change
from nodes.models import NodeChange
from tenants.access import Actor, require_staff
from tenants.audit import audit_record
from tenants.models import Organisation


@transaction.atomic
def organisation_set_encryption(
    *, actor: Actor, organisation: Organisation, enabled: bool
) -> MailCryptKey:
    """Store the organisation's new mail encrypted at rest on its nodes, or stop doing so.

    The first time it is turned on the organisation gets its key pair (the private key
    Fernet-encrypted like DKIM keys). Turning it off keeps the pair on the nodes: new mail is
    stored plain, mail stored encrypted stays readable. Doing what is already done changes
    nothing (and records nothing)."""
    require_staff(actor, "change encryption at rest")
    Organisation.objects.select_for_update().filter(pk=organisation.pk).first()
    key = MailCryptKey.objects.filter(organisation=organisation).first()
    if key is not None and key.enabled == enabled:
        return key
    if key is None and not enabled:
        return MailCryptKey(organisation=organisation, enabled=False)  # unsaved: nothing made
    if key is None:
        key = _new_key(organisation)
    key.enabled, key.changed_at = enabled, timezone.now()
    key.save(update_fields=["enabled", "changed_at"])
    _record_node_changes(organisation)
    audit_record(
        actor=actor,
        organisation_id=organisation.pk,
        action="organisation.encryption_on" if enabled else "organisation.encryption_off",
        target_type="organisation",
        target=organisation.slug,
        before={"encrypt_at_rest": not enabled},
        after={"encrypt_at_rest": enabled},
    )
    return key


def _new_key(organisation: Organisation) -> MailCryptKey:
    private_pem, public_pem = generate_key_pair()
    return MailCryptKey.objects.create(
        organisation=organisation,
        private_key_encrypted=crypto.encrypt(private_pem),
        public_key_pem=public_pem.decode("ascii"),
    )


def _record_node_changes(organisation: Organisation) -> None:
    """Every node serving the organisation's domains re-renders its key store (on commit)."""
    for node_id in sorted(set(organisation.domains.values_list("node_id", flat=True))):
        record_change(node_id=node_id, kind=NodeChange.Kind.MAIL_CRYPT, object_id=organisation.pk)
