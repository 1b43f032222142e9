"""Writes for domains, mailboxes and aliases.

Every service is keyword-only and atomic: it checks the actor's rights, validates every name
before it can reach the mail stack, writes the rows, records an AuditEvent and a node change
(which schedules a reconcile once the transaction commits).
"""

import csv
import datetime as dt
import functools
import io
import json
from urllib.parse import urlparse

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from mailboxes import events
from mailboxes.models import (
    Alias,
    AppPassword,
    Domain,
    DomainStatus,
    ImportStatus,
    Mailbox,
    MailboxImport,
    MailboxStatus,
    VerificationMethod,
    new_verification_token,
)
from mailboxes.selectors import address_receives, domain_verified_owner, domain_verified_parent
from mailhost.backend.config import DEFAULT_APP_PASSWORD_SLOTS
from mailhost.crypto import decrypt, encrypt
from mailhost.errors import Conflict, DomainError, Forbidden, Invalid, NotFound
from mailhost.names import (
    InvalidName,
    domain_for_display,
    hosting_refusal,
    is_special_use,
    normalise_address,
    normalise_domain,
    normalise_local_part,
)
from mailhost.passwords import generate_password, hash_password, verify_password
from mailhost.validation import one_line_problem
from nodes.changes import node_default, record_change
from nodes.models import NodeChange
from nodes.queues import node_queue
from nodes.tasks import purge_archives
from tenants.access import SYSTEM, Actor, require_staff, require_write
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


def _one_line(raw: str | None, *, field: str, limit: int, label: str) -> str:
    value = (raw or "").strip()
    if len(value) > limit:
        raise Invalid(f"The {label} is one line of at most {limit} characters.", field=field)
    problem = one_line_problem(value)
    if problem:
        raise Invalid(f"The {label} {problem}.", field=field)
    return value


def _display_name(raw: str | None) -> str:
    return _one_line(raw, field="display_name", limit=200, label="display name")


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


def _new_password_hash(password: str | None) -> tuple[str, str | None]:
    """Hash the given password, or generate one: returns (hash, the generated one or None)."""
    if password is None:
        generated = generate_password()
        return hash_password(generated, generated=True), generated
    return hash_password(password), None


def _lock_domain(domain: Domain) -> Domain:
    """Lock the domain row: serialises address creation so one address is one thing."""
    return Domain.objects.select_for_update().get(pk=domain.pk)


def _refuse_taken_address(domain: Domain, local_part: str, *, except_mailbox=None) -> None:
    mailboxes = Mailbox.objects.filter(domain=domain, local_part=local_part, deleted_at=None)
    if except_mailbox is not None:
        mailboxes = mailboxes.exclude(pk=except_mailbox.pk)
    if mailboxes.exists():
        raise Conflict(
            f"{local_part}@{domain.name} is already a mailbox.",
            field="address",
            code="address_taken",
        )
    if local_part and Alias.objects.filter(domain=domain, local_part=local_part).exists():
        raise Conflict(
            f"{local_part}@{domain.name} is already an alias.",
            field="address",
            code="address_taken",
        )


def _refuse_over_limit(domain: Domain, doing: str) -> None:
    """The domain's live mailboxes may not pass its limit (the caller holds the domain lock,
    so two creators or restorers cannot both take the last place)."""
    limit = domain.max_mailboxes
    if limit is not None and domain.mailboxes.filter(deleted_at=None).count() >= limit:
        raise Conflict(
            f"{domain.name} has reached its limit of {limit} mailboxes, so you cannot "
            f"{doing}. Delete a mailbox first, or ask the mail service's staff to raise "
            "the limit.",
            code="limit_reached",
        )


def _domain_state(domain: Domain) -> dict:
    return {
        "name": domain.name,
        "status": domain.status,
        "max_mailboxes": domain.max_mailboxes,
        "default_quota_mb": domain.default_quota_mb,
        "verified": domain.is_verified,
        "verification_method": domain.verification_method,
        "role_target": domain.role_target,
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


def _reserved_hosts() -> list[str]:
    """The service's own host names: the mail host and the portal's host."""
    hosts = {settings.MAILHOST_HOSTNAME, urlparse(settings.MAILHOST_PORTAL_URL).hostname or ""}
    names = set()
    for host in hosts:
        try:
            names.add(normalise_domain(host))
        except InvalidName:
            continue  # a single-label or broken setting: mailhost.E001 reports it
    return sorted(names)


def _hostable_name(actor: Actor, raw: str) -> str:
    """The name, normalised, if it may be hosted at all; Invalid says why not."""
    name = _domain_name(raw)
    refusal = hosting_refusal(
        name, reserved_hosts=_reserved_hosts(), allow_reserved_parents=actor.is_global
    )
    if refusal:
        raise Invalid(refusal, field="name", code="name_not_hostable")
    return name


def _limit_value(actor: Actor, max_mailboxes, current=None):
    """A mailbox limit is what the service's staff sell and set: an organisation may not set
    or raise its own (a 403 that says who can)."""
    if max_mailboxes is not None and (not isinstance(max_mailboxes, int) or max_mailboxes < 0):
        raise Invalid("The mailbox limit is a whole number, or empty.", field="max_mailboxes")
    if max_mailboxes != current and not actor.is_global:
        raise Forbidden(
            "The mailbox limit is set by the mail service's staff; ask them to change it.",
            field="max_mailboxes",
            code="limit_set_by_staff",
        )
    return max_mailboxes


def _verified_at_creation(organisation: Organisation, name: str) -> str:
    """The verification method a new claim starts verified with, or "" (it must prove
    ownership). Nobody else may hold the name verified in either case."""
    if domain_verified_owner(name) is not None:
        return ""
    if is_special_use(name):
        return VerificationMethod.SPECIAL_USE
    parent = domain_verified_parent(name)
    if parent is not None and parent.organisation_id == organisation.pk:
        return VerificationMethod.PARENT  # its DNS is in a zone they proved they control
    return ""


@transaction.atomic
def domain_create(
    *,
    actor: Actor,
    organisation: Organisation,
    name: str,
    max_mailboxes: int | None = None,
    default_quota_mb: int | None = None,
) -> Domain:
    """Claim a domain for an organisation. It is routed, signed and given mail only once its
    ownership is verified (special-use names and names under the organisation's own verified
    domain are verified at once). A name another organisation holds gets a claim like any
    other: the answer never tells one tenant what another hosts."""
    require_write(actor, organisation.pk, "That organisation")
    name = _hostable_name(actor, name)
    max_mailboxes = _limit_value(actor, max_mailboxes)
    quota = _quota(default_quota_mb, settings.MAILHOST_DEFAULT_QUOTA_MB, "default_quota_mb")
    # Serialise claims on one organisation (its row): one organisation, one claim per name.
    Organisation.objects.select_for_update().filter(pk=organisation.pk).first()
    if Domain.objects.filter(organisation=organisation, name=name).exists():
        raise Conflict(
            f"{domain_for_display(name)} is already a domain of this organisation.",
            field="name",
            code="domain_taken",
        )
    parent = domain_verified_parent(name)
    if parent is not None and parent.organisation_id != organisation.pk:
        raise Conflict(
            f"{domain_for_display(name)} is inside a domain whose owner has verified it on "
            "this service; only that organisation can add names under it.",
            field="name",
            code="inside_verified_domain",
        )
    method = _verified_at_creation(organisation, name)
    domain = Domain.objects.create(
        organisation=organisation,
        node=node_default(),
        name=name,
        max_mailboxes=max_mailboxes,
        default_quota_mb=quota,
        verified_at=timezone.now() if method else None,
        verification_method=method,
    )
    events.domain_created.send(sender=Domain, domain=domain)  # identity: its first DKIM key
    _changed(domain, NodeChange.Kind.DOMAIN)
    _audit(actor, organisation.pk, "domain.create", domain, after=_domain_state(domain))
    return domain


@transaction.atomic
def domain_mark_verified(*, actor: Actor, domain: Domain, method: str) -> Domain:
    """Ownership proven: from now on the domain is routed, signed and its mailboxes and aliases
    reach the node (the node change makes the incremental reconcile pick it up at once).

    `method` "dns" is for the verifier (it saw the token); "staff" needs a staff actor. Refused
    while another organisation holds the name verified.
    """
    if method == VerificationMethod.STAFF and not actor.is_global:
        raise Forbidden("Only the mail service's staff can mark a domain verified.")
    if method not in (VerificationMethod.DNS, VerificationMethod.STAFF):
        raise Invalid("Domains are verified by DNS or by staff.", field="method")
    require_write(actor, domain.organisation_id, "That domain")
    domain = _lock_domain(domain)
    if domain.is_verified:
        return domain
    holder = domain_verified_owner(domain.name)
    if holder is not None:
        detail = (
            f"{domain.display_name} is already verified by another organisation on this "
            "service. Ask the service's staff to move it."
        )
        if actor.is_global:
            detail = (
                f"{domain.display_name} is verified by {holder.organisation.name}; revoke "
                "that verification first."
            )
        raise Conflict(detail, code="verified_elsewhere")
    before = _domain_state(domain)
    domain.verified_at, domain.verification_method = timezone.now(), method
    domain.save(update_fields=["verified_at", "verification_method"])
    _changed(domain, NodeChange.Kind.DOMAIN)
    _audit(actor, domain.organisation_id, "domain.verify", domain, before, _domain_state(domain))
    return domain


@transaction.atomic
def domain_revoke_verification(*, actor: Actor, domain: Domain) -> Domain:
    """Staff only: take a domain off the node (no routing, no signing, its mailboxes and aliases
    stop working) until its ownership is verified again, e.g. to move a name to its real owner.
    A fresh token is issued: the old one may be published by the previous owner."""
    if not actor.is_global:
        raise Forbidden("Only the mail service's staff can revoke a domain's verification.")
    domain = _lock_domain(domain)
    if not domain.is_verified:
        return domain
    before = _domain_state(domain)
    domain.verified_at, domain.verification_method = None, ""
    domain.verification_token = new_verification_token()
    domain.save(update_fields=["verified_at", "verification_method", "verification_token"])
    _changed(domain, NodeChange.Kind.DOMAIN)
    _audit(
        actor, domain.organisation_id, "domain.unverify", domain, before, _domain_state(domain)
    )
    return domain


def _role_target(domain: Domain, raw: str) -> str:
    """Where postmaster@ and abuse@ go: "" (automatic) or an address of the organisation that
    receives mail now, so the choice can never make them bounce."""
    if not isinstance(raw, str):
        raise Invalid("The role address target is an e-mail address, or empty.",
                      field="role_target")
    if not raw.strip():
        return ""
    try:
        address = normalise_address(raw.strip())
    except InvalidName as exc:
        raise Invalid(str(exc), field="role_target") from None
    # A role address of another domain counts only if a real mailbox or alias holds it: two
    # domains routed to each other's postmaster@ would loop.
    if not address_receives(domain.organisation_id, address):
        raise Invalid(
            f"{address} is not a mailbox or alias of this organisation that receives mail: "
            "postmaster@ and abuse@ must reach someone. Create it first, or leave this empty "
            "for the automatic choice.",
            field="role_target",
            code="role_target_not_deliverable",
        )
    return address


@transaction.atomic
def domain_update(
    *,
    actor: Actor,
    domain: Domain,
    status: str | None = None,
    max_mailboxes: int | None | type[Ellipsis] = ...,
    default_quota_mb: int | None = None,
    role_target: str | None = None,
) -> Domain:
    """Change a domain's settings; None (… for max_mailboxes) leaves one as it is.
    `role_target` "" returns postmaster@ and abuse@ to the automatic choice."""
    require_write(actor, domain.organisation_id, "That domain")
    domain = _lock_domain(domain)
    before = _domain_state(domain)
    if status is not None:
        if status not in DomainStatus.values:
            raise Invalid(f"Status is one of {', '.join(DomainStatus.values)}.", field="status")
        domain.status = status
    if max_mailboxes is not ...:
        domain.max_mailboxes = _limit_value(actor, max_mailboxes, domain.max_mailboxes)
    if default_quota_mb is not None:
        domain.default_quota_mb = _quota(default_quota_mb, 0, "default_quota_mb")
    if role_target is not None:
        domain.role_target = _role_target(domain, role_target)
    after = _domain_state(domain)
    if after == before:
        return domain
    domain.save(update_fields=["status", "max_mailboxes", "default_quota_mb", "role_target"])
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
        raise Conflict(
            f"{domain.name} already has a catch-all.", field="address", code="address_taken"
        )
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


# --- retention -------------------------------------------------------------------------------


def mailbox_purge_expired(*, now=None) -> int:
    """Forget mailboxes deleted longer ago than MAILHOST_DELETED_RETENTION_DAYS and remove
    their archived mail on the node. Returns how many were purged."""
    cutoff = (now or timezone.now()) - dt.timedelta(days=settings.MAILHOST_DELETED_RETENTION_DAYS)
    expired = Mailbox.objects.filter(deleted_at__lte=cutoff).select_related("domain__node")
    by_node: dict[tuple[int, str], list[str]] = {}
    with transaction.atomic():
        for mailbox in expired.select_for_update(of=("self",)):
            node = mailbox.domain.node
            by_node.setdefault((node.pk, node.name), []).append(str(mailbox.home_id))
            audit_record(
                actor=SYSTEM,
                organisation_id=mailbox.domain.organisation_id,
                action="mailbox.purge",
                target_type="mailbox",
                target=mailbox.address,
            )
            mailbox.delete()
        for (node_id, name), home_ids in by_node.items():
            transaction.on_commit(
                functools.partial(
                    purge_archives.apply_async, args=[node_id, home_ids], queue=node_queue(name)
                )
            )
    return sum(map(len, by_node.values()))


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


# --- bulk CSV import -------------------------------------------------------------------------

IMPORT_COLUMNS = ("address", "display_name", "quota_mb", "password")
MAX_IMPORT_ROWS = 100_000
MAX_IMPORT_BYTES = 20 * 1024 * 1024
IMPORT_PROGRESS_EVERY = 25  # rows between progress writes


def _parse_import(content: str) -> list[dict]:
    reader = csv.DictReader(io.StringIO(content))
    header = [name.strip().lower() for name in (reader.fieldnames or [])]
    if "address" not in header:
        raise Invalid(
            "The first line must name the columns, including 'address' "
            f"(allowed: {', '.join(IMPORT_COLUMNS)}).",
            field="file",
        )
    unknown = sorted(set(header) - set(IMPORT_COLUMNS))
    if unknown:
        raise Invalid(f"Unknown column(s): {', '.join(unknown)}.", field="file")
    reader.fieldnames = header
    rows = []
    try:
        for row in reader:
            if any((value or "").strip() for value in row.values() if isinstance(value, str)):
                rows.append({"line": reader.line_num, **{k: row.get(k) for k in IMPORT_COLUMNS}})
            if len(rows) > MAX_IMPORT_ROWS:
                raise Invalid(f"At most {MAX_IMPORT_ROWS} rows per import.", field="file")
    except csv.Error as exc:
        raise Invalid(f"Line {reader.line_num}: not valid CSV ({exc}).", field="file") from None
    if not rows:
        raise Invalid("The file has no rows below its header.", field="file")
    return rows


@transaction.atomic
def mailbox_import_start(
    *, actor: Actor, organisation: Organisation, filename: str, content: bytes
) -> MailboxImport:
    """Check an uploaded CSV and queue it; the rows are created by `mailbox_import_run`."""
    require_write(actor, organisation.pk, "That organisation")
    if actor.user is None:
        raise Forbidden("Imports are started by a signed-in operator.")
    if len(content) > MAX_IMPORT_BYTES:
        raise Invalid(f"The file is larger than {MAX_IMPORT_BYTES // 2**20} MB.", field="file")
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise Invalid("Save the file as UTF-8 CSV.", field="file") from None
    filename = _one_line(filename, field="file", limit=200, label="file name")
    rows = _parse_import(text)
    job = MailboxImport.objects.create(
        organisation=organisation,
        created_by=actor.user,
        actor_ip=actor.ip,
        filename=filename,
        total=len(rows),
        source_encrypted=encrypt(json.dumps(rows).encode()),
    )
    audit_record(
        actor=actor,
        organisation_id=organisation.pk,
        action="mailbox_import.start",
        target_type="mailbox_import",
        target=job.filename or f"import {job.pk}",
        after={"rows": len(rows)},
    )
    transaction.on_commit(functools.partial(_enqueue_import, job.pk))
    return job


def _enqueue_import(job_id: int) -> None:
    events.import_queued.send(sender=MailboxImport, import_id=job_id)


def _import_row(actor: Actor, organisation_id: int, row: dict, domains: dict) -> str | None:
    """Create one row's mailbox; returns the generated password, if one was generated."""
    raw_address = (row.get("address") or "").strip()
    try:
        local_part, domain_name = raw_address.rsplit("@", 1)
        domain_name = normalise_domain(domain_name)
    except (ValueError, InvalidName):
        raise Invalid(f"{raw_address!r} is not an e-mail address.", field="address") from None
    if domain_name not in domains:
        domains[domain_name] = Domain.objects.filter(
            name=domain_name, organisation_id=organisation_id
        ).first()
    domain = domains[domain_name]
    if domain is None:
        raise NotFound(f"{domain_name} is not a domain of this organisation.")
    quota_raw = (row.get("quota_mb") or "").strip()
    if quota_raw and not quota_raw.isdigit():
        raise Invalid("quota_mb is a whole number of MB.", field="quota_mb")
    _, generated = mailbox_create(
        actor=actor,
        domain=domain,
        local_part=local_part,
        password=(row.get("password") or None),
        display_name=row.get("display_name") or "",
        quota_mb=int(quota_raw) if quota_raw else None,
    )
    return generated


def mailbox_import_run(*, import_id: int) -> MailboxImport:
    """Create the mailboxes of a queued import, one service call per row, recording progress.

    Each row is its own transaction: a bad row is reported and the others still go in.
    Re-running a finished import does nothing (the source is gone).
    """
    job = MailboxImport.objects.select_related("created_by").get(pk=import_id)
    if job.is_finished or not job.source_encrypted:
        return job
    rows = json.loads(decrypt(job.source_encrypted))
    actor = Actor(user=job.created_by, ip=job.actor_ip)
    MailboxImport.objects.filter(pk=job.pk).update(status=ImportStatus.RUNNING)
    domains: dict = {}
    generated: list[list[str]] = []
    job.processed = job.created = job.failed = 0
    job.errors = []
    try:
        for row in rows:
            _import_one(job, actor, row, domains, generated)
    except Exception:
        # Never leave an import "running" for ever, nor its passwords at rest.
        MailboxImport.objects.filter(pk=job.pk).update(
            status=ImportStatus.FAILED,
            finished_at=timezone.now(),
            source_encrypted="",
            processed=job.processed,
            created=job.created,
            failed=job.failed,
            errors=job.errors,
        )
        raise
    job.status = ImportStatus.DONE
    job.finished_at = timezone.now()
    job.source_encrypted = ""
    job.generated_encrypted = encrypt(json.dumps(generated).encode()) if generated else ""
    job.save()
    return job


def _import_one(job: MailboxImport, actor: Actor, row: dict, domains: dict, generated: list):
    try:
        password = _import_row(actor, job.organisation_id, row, domains)
    except DomainError as exc:
        job.failed += 1
        address = str(row.get("address") or "")[:254]
        job.errors.append({"line": row["line"], "address": address, "error": exc.detail})
    else:
        job.created += 1
        if password:
            generated.append([row["address"].strip().lower(), password])
    job.processed += 1
    if job.processed % IMPORT_PROGRESS_EVERY == 0:
        job.save(update_fields=["processed", "created", "failed", "errors"])


@transaction.atomic
def mailbox_import_take_generated(*, actor: Actor, mailbox_import: MailboxImport) -> list:
    """The generated passwords of an import, [[address, password], …], handed out once."""
    require_write(actor, mailbox_import.organisation_id, "That import")
    job = MailboxImport.objects.select_for_update().get(pk=mailbox_import.pk)
    if not job.generated_encrypted:
        raise Conflict("The generated passwords were already downloaded.", code="already_taken")
    generated = json.loads(decrypt(job.generated_encrypted))
    job.generated_encrypted = ""
    job.save(update_fields=["generated_encrypted"])
    audit_record(
        actor=actor,
        organisation_id=job.organisation_id,
        action="mailbox_import.passwords",
        target_type="mailbox_import",
        target=job.filename or f"import {job.pk}",
        after={"count": len(generated)},
    )
    return generated


# --- usage ------------------------------------------------------------------------------------


def mailbox_usage_record(*, node_id: int, usage: dict[str, int], now=None) -> int:
    """Store what the node reported as each mailbox's storage in use; returns how many rows
    changed. Telemetry, not a change of desired state: no revision, no audit event."""
    now = now or timezone.now()
    live = Mailbox.objects.filter(domain__node_id=node_id, deleted_at=None)
    changed = []
    for mailbox in live.select_related("domain").only(
        "pk", "local_part", "domain__name", "used_bytes"
    ).iterator(chunk_size=5000):
        used = usage.get(mailbox.address)
        if used is not None and used != mailbox.used_bytes:
            mailbox.used_bytes, mailbox.usage_at = used, now
            changed.append(mailbox)
    Mailbox.objects.bulk_update(changed, ["used_bytes", "usage_at"], batch_size=1000)
    return len(changed)


# --- organisation suspension ------------------------------------------------------------------


@transaction.atomic
def organisation_set_suspended(
    *, actor: Actor, organisation: Organisation, suspended: bool
) -> Organisation:
    """Suspend a client organisation, or lift its suspension (staff only; audited).

    Suspended, its domains count as not hosted (mailboxes.selectors.live_domain_q): on the
    node they stop receiving and its mailboxes stop logging in, through the same reconcile as
    any change; its tokens are refused and its members can only look. Nothing is deleted, so
    lifting it brings everything back as it was. Doing what is already done changes nothing.
    """
    require_staff(actor, "suspend organisations")
    organisation = Organisation.objects.select_for_update().get(pk=organisation.pk)
    if organisation.suspended == suspended:
        return organisation
    before = {"suspended_at": _iso(organisation.suspended_at)}
    organisation.suspended_at = timezone.now() if suspended else None
    organisation.save(update_fields=["suspended_at"])
    for domain in Domain.objects.filter(organisation=organisation).order_by("pk"):
        _changed(domain, NodeChange.Kind.DOMAIN)  # its addresses and DKIM key follow it
    audit_record(
        actor=actor,
        organisation_id=organisation.pk,
        action="organisation.suspend" if suspended else "organisation.unsuspend",
        target_type="organisation",
        target=organisation.slug,
        before=before,
        after={"suspended_at": _iso(organisation.suspended_at)},
    )
    return organisation


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value else None
