"""Mailboxes: create, change, suspend, delete and restore."""

from django.db import transaction
from django.utils import timezone

from mailboxes.models import (
    Domain,
    Mailbox,
    MailboxStatus,
)
from mailboxes.services.common import (
    _audit,
    _changed,
    _display_name,
    _local_part,
    _lock_domain,
    _mailbox_state,
    _new_password_hash,
    _quota,
    _refuse_over_limit,
    _refuse_taken_address,
)
from mailhost.errors import Invalid
from nodes.models import NodeChange
from tenants.access import Actor, require_write

# --- mailboxes -------------------------------------------------------------------------------


@transaction.atomic
def mailbox_create(
    *,
    actor: Actor,
    domain: Domain,
    local_part: str,
    password: str | None = None,
    display_name: str | None = "",
    quota_mb: int | None = None,
) -> tuple[Mailbox, str | None]:
    """Create a mailbox. Returns it and the generated password when none was given."""
    require_write(actor, domain.organisation_id, "That domain")
    local_part = _local_part(local_part)
    display_name = _display_name(display_name)
    quota = _quota(quota_mb, domain.default_quota_mb)
    password_hash, generated = _new_password_hash(password)
    domain = _lock_domain(domain)
    _refuse_taken_address(domain, local_part)
    _refuse_over_limit(domain, "create another")
    mailbox = Mailbox.objects.create(
        domain=domain,
        local_part=local_part,
        display_name=display_name,
        password_hash=password_hash,
        quota_mb=quota,
    )
    _changed(mailbox, NodeChange.Kind.MAILBOX)
    _audit(actor, domain.organisation_id, "mailbox.create", mailbox, after=_mailbox_state(mailbox))
    return mailbox, generated


@transaction.atomic
def mailbox_recreate(
    *,
    actor: Actor,
    domain: Domain,
    local_part: str,
    password_hash: str,
    display_name: str | None = "",
    quota_mb: int | None = None,
) -> Mailbox:
    """Bring a mailbox back from a backup: as mailbox_create, with the password hash it had
    (its holder's password keeps working). The address must be free."""
    require_write(actor, domain.organisation_id, "That domain")
    if not password_hash.startswith("{"):
        raise Invalid("That is not a stored password hash.", field="password_hash")
    local_part = _local_part(local_part)
    display_name = _display_name(display_name)
    quota = _quota(quota_mb, domain.default_quota_mb)
    domain = _lock_domain(domain)
    _refuse_taken_address(domain, local_part)
    _refuse_over_limit(domain, "create another")
    mailbox = Mailbox.objects.create(
        domain=domain, local_part=local_part, display_name=display_name,
        password_hash=password_hash, quota_mb=quota,
    )
    _changed(mailbox, NodeChange.Kind.MAILBOX)
    _audit(actor, domain.organisation_id, "mailbox.recreate", mailbox,
           after=_mailbox_state(mailbox))
    return mailbox


@transaction.atomic
def mailbox_update(
    *,
    actor: Actor,
    mailbox: Mailbox,
    display_name: str | None = None,
    quota_mb: int | None = None,
) -> Mailbox:
    require_write(actor, mailbox.domain.organisation_id, "That mailbox")
    before = _mailbox_state(mailbox)
    if display_name is not None:
        mailbox.display_name = _display_name(display_name)
    if quota_mb is not None:
        mailbox.quota_mb = _quota(quota_mb, 0)
    after = _mailbox_state(mailbox)
    if after == before:
        return mailbox
    mailbox.save(update_fields=["display_name", "quota_mb", "updated_at"])
    _changed(mailbox, NodeChange.Kind.MAILBOX)
    _audit(actor, mailbox.domain.organisation_id, "mailbox.update", mailbox, before, after)
    return mailbox


@transaction.atomic
def mailbox_set_password(
    *, actor: Actor, mailbox: Mailbox, password: str | None = None
) -> str | None:
    """Set the given password, or generate one and return it (once)."""
    require_write(actor, mailbox.domain.organisation_id, "That mailbox")
    mailbox.password_hash, generated = _new_password_hash(password)
    mailbox.save(update_fields=["password_hash", "updated_at"])
    _changed(mailbox, NodeChange.Kind.MAILBOX)
    _audit(actor, mailbox.domain.organisation_id, "mailbox.password", mailbox)
    return generated


@transaction.atomic
def mailbox_set_status(*, actor: Actor, mailbox: Mailbox, status: str) -> Mailbox:
    """active, suspended (no login, still receives) or disabled (no login, mail refused)."""
    require_write(actor, mailbox.domain.organisation_id, "That mailbox")
    if status not in MailboxStatus.values:
        raise Invalid(f"Status is one of {', '.join(MailboxStatus.values)}.", field="status")
    if mailbox.status == status:
        return mailbox
    before = _mailbox_state(mailbox)
    mailbox.status = status
    mailbox.save(update_fields=["status", "updated_at"])
    _changed(mailbox, NodeChange.Kind.MAILBOX)
    _audit(
        actor,
        mailbox.domain.organisation_id,
        "mailbox.status",
        mailbox,
        before,
        _mailbox_state(mailbox),
    )
    return mailbox


@transaction.atomic
def mailbox_rename(*, actor: Actor, mailbox: Mailbox, local_part: str) -> Mailbox:
    """Change the address. The maildir is keyed by `home_id`, so nothing moves on disk."""
    require_write(actor, mailbox.domain.organisation_id, "That mailbox")
    local_part = _local_part(local_part)
    if local_part == mailbox.local_part:
        return mailbox
    domain = _lock_domain(mailbox.domain)
    _refuse_taken_address(domain, local_part, except_mailbox=mailbox)
    before = _mailbox_state(mailbox)
    mailbox.local_part = local_part
    mailbox.save(update_fields=["local_part", "updated_at"])
    _changed(mailbox, NodeChange.Kind.MAILBOX)
    _audit(
        actor, domain.organisation_id, "mailbox.rename", mailbox, before, _mailbox_state(mailbox)
    )
    return mailbox


@transaction.atomic
def mailbox_delete(*, actor: Actor, mailbox: Mailbox) -> Mailbox:
    """Soft delete: the address stops working at once; the maildir is archived for the
    retention period (MAILHOST_DELETED_RETENTION_DAYS) and can be restored until then."""
    require_write(actor, mailbox.domain.organisation_id, "That mailbox")
    if mailbox.deleted_at is not None:
        return mailbox
    before = _mailbox_state(mailbox)
    mailbox.deleted_at = timezone.now()
    mailbox.save(update_fields=["deleted_at", "updated_at"])
    _changed(mailbox, NodeChange.Kind.MAILBOX)
    _audit(actor, mailbox.domain.organisation_id, "mailbox.delete", mailbox, before=before)
    return mailbox


@transaction.atomic
def mailbox_restore(*, actor: Actor, mailbox: Mailbox) -> Mailbox:
    require_write(actor, mailbox.domain.organisation_id, "That mailbox")
    if mailbox.deleted_at is None:
        return mailbox
    domain = _lock_domain(mailbox.domain)
    _refuse_taken_address(domain, mailbox.local_part)
    _refuse_over_limit(domain, f"restore {mailbox.address}")
    mailbox.deleted_at = None
    mailbox.save(update_fields=["deleted_at", "updated_at"])
    _changed(mailbox, NodeChange.Kind.MAILBOX)
    _audit(actor, domain.organisation_id, "mailbox.restore", mailbox, after=_mailbox_state(mailbox))
    return mailbox
