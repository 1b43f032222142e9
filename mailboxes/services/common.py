"""What the mailboxes services share: limits, locks, audit, and the validation helpers (each
raises Invalid naming the field)."""

from mailboxes.models import (
    Alias,
    Domain,
    Mailbox,
)
from mailhost.errors import Conflict, Invalid
from mailhost.names import (
    InvalidName,
    normalise_address,
    normalise_domain,
    normalise_local_part,
)
from mailhost.passwords import generate_password, hash_password
from mailhost.validation import one_line_problem
from nodes.changes import record_change
from nodes.models import NodeChange
from tenants.access import Actor
from tenants.audit import audit_record

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
