"""What a mailbox holder manages in /mailbox/: forwarding, vacation, app passwords, own password."""

import datetime as dt

from django.db import transaction
from django.utils import timezone

from mailboxes.models import (
    AppPassword,
    Mailbox,
)
from mailboxes.services.common import _audit, _changed, _one_line
from mailhost.backend.config import DEFAULT_APP_PASSWORD_SLOTS
from mailhost.errors import Conflict, Forbidden, Invalid, NotFound
from mailhost.names import (
    InvalidName,
    normalise_address,
)
from mailhost.passwords import generate_password, hash_password, verify_password
from nodes.models import NodeChange
from tenants.access import Actor, require_write

# --- what a mailbox holder manages: forwarding, vacation, app passwords, own password --------
# Operators may change these too (require_write); a mailbox holder (Actor.mailbox) only for
# their own mailbox: any other mailbox is NotFound, exactly like another tenant's.

MAX_FORWARD_ADDRESSES = 10
MAX_VACATION_SUBJECT = 200
MAX_VACATION_BODY = 4000
# Dovecot checks app passwords through a fixed number of passdb slots (see backend.config).
MAX_APP_PASSWORDS = DEFAULT_APP_PASSWORD_SLOTS


def _require_mailbox_write(actor: Actor, mailbox: Mailbox) -> None:
    if actor.mailbox is not None:
        if actor.mailbox.pk != mailbox.pk or mailbox.deleted_at is not None:
            raise NotFound("That mailbox was not found.")
        return
    require_write(actor, mailbox.domain.organisation_id, "That mailbox")


def _forward_addresses(raw, own_address: str) -> list[str]:
    if isinstance(raw, str):
        raw = [part for part in raw.replace(",", "\n").split() if part]
    if not isinstance(raw, list | tuple):
        raise Invalid("Give the forwarding addresses as a list.", field="forward_to")
    if len(raw) > MAX_FORWARD_ADDRESSES:
        raise Invalid(f"Forward to at most {MAX_FORWARD_ADDRESSES} addresses.", field="forward_to")
    result: list[str] = []
    for item in raw:
        try:
            address = normalise_address(str(item).strip())
        except InvalidName as exc:
            raise Invalid(f"Forwarding address {item!r}: {exc}", field="forward_to") from None
        if address == own_address:
            raise Invalid("A mailbox cannot forward to itself.", field="forward_to")
        if address not in result:
            result.append(address)
    return result


@transaction.atomic
def mailbox_set_forwarding(
    *, actor: Actor, mailbox: Mailbox, forward_to: list[str] | str, keep_copy: bool
) -> Mailbox:
    """Forward incoming mail to `forward_to` (empty: no forwarding), keeping a copy or not."""
    _require_mailbox_write(actor, mailbox)
    addresses = _forward_addresses(forward_to, mailbox.address)
    before = {"forward_to": mailbox.forward_to, "keep_copy": mailbox.forward_keep_copy}
    after = {"forward_to": addresses, "keep_copy": bool(keep_copy)}
    if before == after:
        return mailbox
    mailbox.forward_to = addresses
    mailbox.forward_keep_copy = bool(keep_copy)
    mailbox.save(update_fields=["forward_to", "forward_keep_copy", "updated_at"])
    _changed(mailbox, NodeChange.Kind.MAILBOX)
    _audit(actor, mailbox.domain.organisation_id, "mailbox.forwarding", mailbox, before, after)
    return mailbox


def _vacation_body(raw: str | None) -> str:
    value = (raw or "").replace("\r\n", "\n").replace("\r", "\n").strip("\n")
    if len(value) > MAX_VACATION_BODY:
        raise Invalid(
            f"The auto-reply text is at most {MAX_VACATION_BODY} characters.", field="body"
        )
    if any((ord(ch) < 32 and ch not in "\n\t") or ord(ch) == 127 for ch in value):
        raise Invalid("The auto-reply text may not contain control characters.", field="body")
    return value


@transaction.atomic
def mailbox_set_vacation(
    *,
    actor: Actor,
    mailbox: Mailbox,
    enabled: bool,
    subject: str,
    body: str,
    start: dt.date | None,
    end: dt.date | None,
) -> Mailbox:
    """The vacation auto-reply: sent at most once a day per sender, between start and end."""
    _require_mailbox_write(actor, mailbox)
    subject = _one_line(subject, field="subject", limit=MAX_VACATION_SUBJECT, label="subject")
    body = _vacation_body(body)
    if enabled and not body:
        raise Invalid("Write the auto-reply text.", field="body")
    if start is not None and end is not None and end < start:
        raise Invalid("The last day cannot be before the first day.", field="end")
    fields = ["enabled", "subject", "body", "start", "end"]
    before = dict(zip(fields, _vacation_state(mailbox), strict=True))
    mailbox.vacation_enabled = bool(enabled)
    mailbox.vacation_subject, mailbox.vacation_body = subject, body
    mailbox.vacation_start, mailbox.vacation_end = start, end
    after = dict(zip(fields, _vacation_state(mailbox), strict=True))
    if before == after:
        return mailbox
    mailbox.save(
        update_fields=[
            "vacation_enabled",
            "vacation_subject",
            "vacation_body",
            "vacation_start",
            "vacation_end",
            "updated_at",
        ]
    )
    _changed(mailbox, NodeChange.Kind.MAILBOX)
    _audit(actor, mailbox.domain.organisation_id, "mailbox.vacation", mailbox, before, after)
    return mailbox


def _vacation_state(mailbox: Mailbox) -> tuple:
    return (
        mailbox.vacation_enabled,
        mailbox.vacation_subject,
        mailbox.vacation_body,
        mailbox.vacation_start.isoformat() if mailbox.vacation_start else None,
        mailbox.vacation_end.isoformat() if mailbox.vacation_end else None,
    )


@transaction.atomic
def app_password_create(*, actor: Actor, mailbox: Mailbox, name: str) -> tuple[AppPassword, str]:
    """A password for one device; returns it with the raw password, shown once."""
    _require_mailbox_write(actor, mailbox)
    name = _one_line(name, field="name", limit=100, label="device name")
    if not name:
        raise Invalid("Name the device this password is for.", field="name")
    active = mailbox.app_passwords.filter(revoked_at=None).count()
    if active >= MAX_APP_PASSWORDS:
        raise Conflict(
            f"A mailbox has at most {MAX_APP_PASSWORDS} app passwords; revoke one first.",
            code="limit_reached",
        )
    raw = generate_password()
    app_password = AppPassword.objects.create(
        mailbox=mailbox, name=name, password_hash=hash_password(raw, generated=True)
    )
    _changed(mailbox, NodeChange.Kind.MAILBOX)
    _audit(
        actor, mailbox.domain.organisation_id, "app_password.create", mailbox, after={"name": name}
    )
    return app_password, raw


@transaction.atomic
def app_password_revoke(*, actor: Actor, app_password: AppPassword) -> AppPassword:
    mailbox = app_password.mailbox
    _require_mailbox_write(actor, mailbox)
    if app_password.revoked_at is not None:
        return app_password
    app_password.revoked_at = timezone.now()
    app_password.save(update_fields=["revoked_at"])
    _changed(mailbox, NodeChange.Kind.MAILBOX)
    _audit(
        actor,
        mailbox.domain.organisation_id,
        "app_password.revoke",
        mailbox,
        before={"name": app_password.name},
    )
    return app_password


@transaction.atomic
def mailbox_change_own_password(
    *, actor: Actor, mailbox: Mailbox, current_password: str, new_password: str
) -> Mailbox:
    """A mailbox holder's password change: the current password must be given and right."""
    if actor.mailbox is None:
        raise Forbidden("Only the mailbox holder changes a password this way.")
    _require_mailbox_write(actor, mailbox)
    if not verify_password(current_password or "", mailbox.password_hash):
        raise Invalid("Your current password is not right.", field="current_password")
    if new_password == current_password:
        raise Invalid("Choose a password different from the current one.", field="new_password")
    try:
        mailbox.password_hash = hash_password(new_password)
    except Invalid as exc:
        raise Invalid(exc.detail, field="new_password") from None
    mailbox.save(update_fields=["password_hash", "updated_at"])
    _changed(mailbox, NodeChange.Kind.MAILBOX)
    _audit(actor, mailbox.domain.organisation_id, "mailbox.password", mailbox)
    return mailbox
