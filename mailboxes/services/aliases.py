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
