"""Writes for domains, mailboxes and aliases.

Every service is keyword-only and atomic: it checks the actor's rights, validates every name
before it can reach the mail stack, writes the rows, records an AuditEvent and a node change
(which schedules a reconcile once the transaction commits).
"""

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from mailboxes.changes import node_default, record_change
from mailboxes.models import Alias, Domain, DomainStatus, Mailbox, MailboxStatus, NodeChange
from mailhost.errors import Conflict, Invalid
from mailhost.names import InvalidName, normalise_address, normalise_domain, normalise_local_part
from mailhost.passwords import generate_password, hash_password
from tenants.access import Actor, require_write
from tenants.audit import audit_record
from tenants.models import Organisation

MAX_QUOTA_MB = 1024 * 1024  # 1 TiB
MAX_ALIAS_DESTINATIONS = 50


# --- validation helpers: every one raises Invalid naming the field --------------------------


def _domain_name(raw: str) -> str:
    try:
        return normalise_domain(raw)
    except InvalidName as exc:
        raise Invalid(str(exc), field="name") from None


def _local_part(raw: str, field: str = "local_part") -> str:
    try:
        return normalise_local_part(raw)
    except InvalidName as exc:
        raise Invalid(str(exc), field=field) from None


def _display_name(raw: str | None) -> str:
    value = (raw or "").strip()
    if len(value) > 200 or any(ord(ch) < 32 for ch in value):
        raise Invalid("The display name is one line of at most 200 characters.", field="display_name")
    return value


def _quota(raw: int | None, fallback: int, field: str = "quota_mb") -> int:
    value = fallback if raw is None else raw
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_QUOTA_MB:
        raise Invalid(f"The quota is a whole number of MB from 1 to {MAX_QUOTA_MB}.", field=field)
    return value


def _destinations(raw: list[str]) -> list[str]:
    if not isinstance(raw, list | tuple) or not raw:
        raise Invalid("Give at least one destination address.", field="destinations")
    if len(raw) > MAX_ALIAS_DESTINATIONS:
        raise Invalid(
            f"An alias has at most {MAX_ALIAS_DESTINATIONS} destinations.", field="destinations"
        )
    result: list[str] = []
    for item in raw:
        try:
            address = normalise_address(item)
        except InvalidName as exc:
            raise Invalid(f"Destination {item!r}: {exc}", field="destinations") from None
        if address not in result:
            result.append(address)
    return result


def _lock_domain(domain: Domain) -> Domain:
    """Lock the domain row: serialises address creation so one address is one thing."""
    return Domain.objects.select_for_update().get(pk=domain.pk)


def _refuse_taken_address(domain: Domain, local_part: str, *, except_mailbox=None) -> None:
    mailboxes = Mailbox.objects.filter(domain=domain, local_part=local_part, deleted_at=None)
    if except_mailbox is not None:
        mailboxes = mailboxes.exclude(pk=except_mailbox.pk)
    if mailboxes.exists():
        raise Conflict(
            f"{local_part}@{domain.name} is already a mailbox.", field="address", code="address_taken"
        )
    if local_part and Alias.objects.filter(domain=domain, local_part=local_part).exists():
        raise Conflict(
            f"{local_part}@{domain.name} is already an alias.", field="address", code="address_taken"
        )


def _domain_state(domain: Domain) -> dict:
    return {
        "name": domain.name,
        "status": domain.status,
        "max_mailboxes": domain.max_mailboxes,
        "default_quota_mb": domain.default_quota_mb,
    }


def _mailbox_state(mailbox: Mailbox) -> dict:
    return {
        "address": mailbox.address,
        "display_name": mailbox.display_name,
        "quota_mb": mailbox.quota_mb,
        "status": mailbox.status,
        "deleted": mailbox.deleted_at is not None,
    }


def _alias_state(alias: Alias) -> dict:
    return {"address": alias.address, "destinations": alias.destinations, "active": alias.active}


def _changed(obj, kind: str) -> None:
    """Record a node change for `obj` and store the revision it needs to be live."""
    node_id = obj.node_id if kind == NodeChange.Kind.DOMAIN else obj.domain.node_id
    obj.revision = record_change(node_id=node_id, kind=kind, object_id=obj.pk)
    type(obj).objects.filter(pk=obj.pk).update(revision=obj.revision)


def _audit(actor: Actor, organisation_id: int, action: str, obj, before=None, after=None):
    audit_record(
        actor=actor,
        organisation_id=organisation_id,
        action=action,
        target_type=type(obj).__name__.lower(),
        target=obj.address if hasattr(obj, "address") else obj.name,
        before=before,
        after=after,
    )


# --- domains ---------------------------------------------------------------------------------


@transaction.atomic
def domain_create(
    *,
    actor: Actor,
    organisation: Organisation,
    name: str,
    max_mailboxes: int | None = None,
    default_quota_mb: int | None = None,
) -> Domain:
    from identity.services import dkim_key_create_initial

    require_write(actor, organisation.pk, "That organisation")
    name = _domain_name(name)
    if max_mailboxes is not None and (not isinstance(max_mailboxes, int) or max_mailboxes < 0):
        raise Invalid("The mailbox limit is a whole number, or empty.", field="max_mailboxes")
    quota = _quota(default_quota_mb, settings.MAILHOST_DEFAULT_QUOTA_MB, "default_quota_mb")
    if Domain.objects.filter(name=name).exists():
        raise Conflict(f"{name} is already hosted here.", field="name", code="domain_taken")
    domain = Domain.objects.create(
        organisation=organisation,
        node=node_default(),
        name=name,
        max_mailboxes=max_mailboxes,
        default_quota_mb=quota,
    )
    dkim_key_create_initial(domain=domain)
    _changed(domain, NodeChange.Kind.DOMAIN)
    _audit(actor, organisation.pk, "domain.create", domain, after=_domain_state(domain))
    return domain


@transaction.atomic
def domain_update(
    *,
    actor: Actor,
    domain: Domain,
    status: str | None = None,
    max_mailboxes: int | None | type[Ellipsis] = ...,
    default_quota_mb: int | None = None,
) -> Domain:
    require_write(actor, domain.organisation_id, "That domain")
    domain = _lock_domain(domain)
    before = _domain_state(domain)
    if status is not None:
        if status not in DomainStatus.values:
            raise Invalid(f"Status is one of {', '.join(DomainStatus.values)}.", field="status")
        domain.status = status
    if max_mailboxes is not ...:
        if max_mailboxes is not None and (not isinstance(max_mailboxes, int) or max_mailboxes < 0):
            raise Invalid("The mailbox limit is a whole number, or empty.", field="max_mailboxes")
        domain.max_mailboxes = max_mailboxes
    if default_quota_mb is not None:
        domain.default_quota_mb = _quota(default_quota_mb, 0, "default_quota_mb")
    after = _domain_state(domain)
    if after == before:
        return domain
    domain.save(update_fields=["status", "max_mailboxes", "default_quota_mb"])
    _changed(domain, NodeChange.Kind.DOMAIN)
    _audit(actor, domain.organisation_id, "domain.update", domain, before, after)
    return domain


@transaction.atomic
def domain_delete(*, actor: Actor, domain: Domain) -> None:
    """Stop hosting a domain. Refused while it still has mailboxes or aliases."""
    require_write(actor, domain.organisation_id, "That domain")
    domain = _lock_domain(domain)
    mailboxes = domain.mailboxes.count()
    aliases = domain.aliases.count()
    if mailboxes or aliases:
        raise Conflict(
            f"{domain.name} still has {mailboxes} mailbox(es) (deleted ones included until "
            f"purged) and {aliases} alias(es); remove them first.",
            code="domain_not_empty",
        )
    _audit(actor, domain.organisation_id, "domain.delete", domain, before=_domain_state(domain))
    node_id, domain_id = domain.node_id, domain.pk
    domain.delete()
    record_change(node_id=node_id, kind=NodeChange.Kind.DOMAIN, object_id=domain_id)


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
    generated = generate_password() if password is None else None
    password_hash = hash_password(generated or password)
    domain = _lock_domain(domain)
    _refuse_taken_address(domain, local_part)
    if domain.max_mailboxes is not None:
        if domain.mailboxes.filter(deleted_at=None).count() >= domain.max_mailboxes:
            raise Conflict(
                f"{domain.name} has reached its limit of {domain.max_mailboxes} mailboxes.",
                code="limit_reached",
            )
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
    generated = generate_password() if password is None else None
    mailbox.password_hash = hash_password(generated or password)
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
        actor, mailbox.domain.organisation_id, "mailbox.status", mailbox, before,
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
    _audit(actor, domain.organisation_id, "mailbox.rename", mailbox, before, _mailbox_state(mailbox))
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
    mailbox.deleted_at = None
    mailbox.save(update_fields=["deleted_at", "updated_at"])
    _changed(mailbox, NodeChange.Kind.MAILBOX)
    _audit(actor, domain.organisation_id, "mailbox.restore", mailbox, after=_mailbox_state(mailbox))
    return mailbox


# --- aliases ---------------------------------------------------------------------------------


def _alias_local_part(raw: str) -> str:
    """'' (or '*') is the catch-all; anything else is a normal local part."""
    if raw in ("", "*"):
        return ""
    return _local_part(raw, field="address")


@transaction.atomic
def alias_create(
    *, actor: Actor, domain: Domain, local_part: str, destinations: list[str]
) -> Alias:
    require_write(actor, domain.organisation_id, "That domain")
    local_part = _alias_local_part(local_part)
    destinations = _destinations(destinations)
    if f"{local_part}@{domain.name}" in destinations:
        raise Invalid("An alias cannot forward to itself.", field="destinations")
    domain = _lock_domain(domain)
    _refuse_taken_address(domain, local_part)
    if local_part == "" and Alias.objects.filter(domain=domain, local_part="").exists():
        raise Conflict(f"{domain.name} already has a catch-all.", field="address", code="address_taken")
    alias = Alias.objects.create(domain=domain, local_part=local_part, destinations=destinations)
    _changed(alias, NodeChange.Kind.ALIAS)
    _audit(actor, domain.organisation_id, "alias.create", alias, after=_alias_state(alias))
    return alias


@transaction.atomic
def alias_update(
    *, actor: Actor, alias: Alias, destinations: list[str] | None = None, active: bool | None = None
) -> Alias:
    require_write(actor, alias.domain.organisation_id, "That alias")
    before = _alias_state(alias)
    if destinations is not None:
        alias.destinations = _destinations(destinations)
        if alias.address in alias.destinations:
            raise Invalid("An alias cannot forward to itself.", field="destinations")
    if active is not None:
        alias.active = bool(active)
    after = _alias_state(alias)
    if after == before:
        return alias
    alias.save(update_fields=["destinations", "active"])
    _changed(alias, NodeChange.Kind.ALIAS)
    _audit(actor, alias.domain.organisation_id, "alias.update", alias, before, after)
    return alias


@transaction.atomic
def alias_delete(*, actor: Actor, alias: Alias) -> None:
    require_write(actor, alias.domain.organisation_id, "That alias")
    _audit(actor, alias.domain.organisation_id, "alias.delete", alias, before=_alias_state(alias))
    node_id, alias_id = alias.domain.node_id, alias.pk
    alias.delete()
    record_change(node_id=node_id, kind=NodeChange.Kind.ALIAS, object_id=alias_id)
