"""Application senders: send-only SMTP credentials scoped to From addresses."""

import secrets

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from delivery import node
from delivery.models import ApplicationSender
from mailboxes.models import Domain, Mailbox
from mailboxes.selectors import live_domain_q
from mailhost.errors import Invalid, NotFound
from mailhost.names import InvalidName, split_address
from mailhost.passwords import generate_password, hash_password
from tenants.access import Actor, require_read, require_write
from tenants.audit import audit_record
from tenants.models import Organisation


def _address(organisation: Organisation, raw: str, index: int) -> str:
    """An address of the organisation's live domains that no mailbox owns (a mailbox's own
    login keeps it: the node asks the mailboxes first)."""
    field = f"addresses[{index}]"
    try:
        local, name = split_address(raw)
    except InvalidName as exc:
        raise Invalid(str(exc), field=field) from exc
    if not Domain.objects.filter(live_domain_q(), organisation=organisation, name=name).exists():
        raise Invalid(f"{raw} is not in one of this organisation's verified, active domains.",
                      field=field, code="sender_not_allowed")
    if Mailbox.objects.filter(domain__name=name, local_part=local, deleted_at=None).exists():
        raise Invalid(f"{local}@{name} is a mailbox: send as it with the mailbox's own login, "
                      "or give the application an address of its own.", field=field)
    return f"{local}@{name}"


def app_sender_create(*, actor: Actor, organisation: Organisation, name: str,
                      addresses: list[str]) -> tuple[ApplicationSender, str]:
    """A new application sender and its password (returned here only, never stored)."""
    require_write(actor, organisation.id)
    if not addresses:
        raise Invalid("Give the application at least one From address.", field="addresses")
    scoped = sorted({_address(organisation, raw, i) for i, raw in enumerate(addresses)})
    password = generate_password()
    with transaction.atomic():
        sender = ApplicationSender.objects.create(
            organisation=organisation, name=name, login=f"app-{secrets.token_hex(8)}",
            password_hash=hash_password(password, generated=True), addresses=scoped,
        )
        audit_record(actor=actor, organisation_id=organisation.id, action="app_sender.create",
                     target_type="app_sender", target=sender.login,
                     after={"name": name, "addresses": scoped})
        node.record_outbound_change(organisation)
    return sender, password


def app_sender_revoke(*, actor: Actor, organisation: Organisation, login: str) -> None:
    require_write(actor, organisation.id)
    with transaction.atomic():
        sender = ApplicationSender.objects.filter(
            organisation=organisation, login=login, revoked_at=None).first()
        if sender is None:
            raise NotFound("That application sender was not found.")
        sender.revoked_at = timezone.now()
        sender.save(update_fields=["revoked_at"])
        audit_record(actor=actor, organisation_id=organisation.id, action="app_sender.revoke",
                     target_type="app_sender", target=login)
        node.record_outbound_change(organisation)


def app_sender_list(actor: Actor, organisation: Organisation) -> QuerySet[ApplicationSender]:
    require_read(actor, organisation.id)
    return ApplicationSender.objects.filter(organisation=organisation).order_by("name", "id")
