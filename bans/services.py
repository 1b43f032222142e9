"""Lifting a ban: one service behind the page, the API and `manage.py bans lift`."""

from django.db import transaction

from bans.node import node_store
from bans.selectors import BanView, ban_get
from mailhost.errors import Forbidden, NotFound
from tenants.access import Actor
from tenants.audit import audit_record
from tenants.models import WRITE_ROLES


def _lifting_organisation(actor: Actor, ban: BanView) -> int | None:
    """The organisation in whose name the actor lifts (None for staff: install-wide)."""
    if actor.is_global:
        return None
    for organisation_id in ban.organisation_ids:
        if actor.role_in(organisation_id) in WRITE_ROLES:
            return organisation_id
    raise Forbidden("Your role is read-only: you cannot lift bans.")


@transaction.atomic
def ban_lift(*, actor: Actor, ip: str) -> BanView:
    """End the ban on `ip` now, on this node's store, audited.

    Staff lift any ban; an organisation's owner or admin lifts a ban whose failed logins
    targeted its own addresses (a viewer or read-only token gets Forbidden, anyone else
    NotFound). The audit event is written first and rolled back if the store refuses.
    The store is the node's on this host (single box); a multi-node install will send the
    lift to each node's queue instead (see bans.node).
    """
    ban = ban_get(actor, ip)
    organisation_id = _lifting_organisation(actor, ban)
    audit_record(
        actor=actor,
        organisation_id=organisation_id,
        action="ban.lift",
        target_type="ip_ban",
        target=ban.ip,
        before={
            "until": ban.until.isoformat(),
            "failures": ban.failures,
            "services": list(ban.services),
            "accounts": list(ban.accounts),  # only those this actor may see
        },
        after=None,
    )
    if node_store().lift(ban.ip) is None:
        raise NotFound("There is no ban on that address.")  # it expired meanwhile
    return ban
