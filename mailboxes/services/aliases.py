"""Aliases, forwarders and catch-alls."""

from django.db import transaction

from mailboxes.models import (
    Alias,
    Domain,
)
from mailboxes.services.common import (
    _alias_state,
    _audit,
    _changed,
    _destinations,
    _local_part,
    _lock_domain,
    _refuse_taken_address,
)
from mailhost.errors import Conflict, Invalid
from nodes.changes import record_change
from nodes.models import NodeChange
from tenants.access import Actor, require_write

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
def alias_create_or_get(
    *, actor: Actor, domain: Domain, local_part: str, destinations: list[str],
    active: bool | None = None,
) -> tuple[Alias, bool]:  # fmt: skip
    """Create an alias (`True`), or return the one already at that address when it has these
    destinations, and this `active` when one is given (`False`): a create whose answer was
    lost can be sent again. Another alias there is 409 `exists_with_different_attributes`
    naming what differs; a mailbox there is 409 `address_taken`. `active=False` creates the
    alias switched off, in the same transaction."""
    try:
        with transaction.atomic():
            alias = alias_create(
                actor=actor, domain=domain, local_part=local_part, destinations=destinations
            )
            if active is False:
                alias = alias_update(actor=actor, alias=alias, active=False)
            return alias, True
    except Conflict as exc:
        if exc.code != "address_taken":
            raise
        existing = (
            Alias.objects.filter(domain=domain, local_part=_alias_local_part(local_part))
            .select_related("domain__node")
            .first()
        )
        if existing is None:  # a mailbox holds the address
            raise
    differ = [] if active is None or existing.active == active else ["active"]
    if sorted(existing.destinations) != sorted(_destinations(destinations)):
        differ.append("destinations")
    if differ:
        raise Conflict(
            f"{existing.address} already exists with a different {', '.join(differ)}.",
            field=differ[0],
            code="exists_with_different_attributes",
        )
    return existing, False


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
