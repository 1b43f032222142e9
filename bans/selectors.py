"""Who sees which bans.

An IP ban is install-wide: staff (and operator commands) see every ban with every account it
targeted. A member of an organisation sees a ban only if a failed login behind it targeted an
address under one of the organisation's domains, and sees only those addresses of its own:
nothing about other tenants' accounts, nor bans that never touched it (404, as for any other
tenant's object).
"""

import datetime as dt
from dataclasses import dataclass

from bans.node import node_store
from mailboxes.models import Domain
from mailhost.backend.bans import Ban, Throttle, normalise_ip
from mailhost.errors import Invalid, NotFound
from tenants.access import Actor, visible_organisations


@dataclass(frozen=True)
class BanView:
    """A ban as one actor may see it."""

    ip: str
    since: dt.datetime
    until: dt.datetime
    failures: int
    services: tuple[str, ...]
    accounts: tuple[str, ...]  # only those the actor may see
    organisation_ids: tuple[int, ...]  # the actor's organisations it touched (staff: all)

    @classmethod
    def of(cls, ban: Ban, accounts, organisation_ids) -> "BanView":
        return cls(
            ip=ban.ip,
            since=dt.datetime.fromtimestamp(ban.since, dt.UTC),
            until=dt.datetime.fromtimestamp(ban.until, dt.UTC),
            failures=ban.failures,
            services=ban.services,
            accounts=tuple(accounts),
            organisation_ids=tuple(organisation_ids),
        )


def _domain_of(account: str) -> str:
    return account.rpartition("@")[2]


def _owners(actor: Actor, bans: list[Ban]) -> dict[str, int]:
    """{domain name: organisation id} for the targeted domains the actor's organisations own.
    One query, bounded by the number of bans rather than of domains."""
    names = {_domain_of(a) for ban in bans for a in ban.accounts if "@" in a}
    if not names:
        return {}
    rows = Domain.objects.filter(name__in=names)
    if not actor.is_global:
        rows = rows.filter(organisation__in=visible_organisations(actor))
    return dict(rows.values_list("name", "organisation_id"))


def _view(actor: Actor, ban: Ban, owners: dict[str, int]) -> BanView | None:
    if actor.is_global:
        return BanView.of(ban, ban.accounts, sorted(set(owners.values())))
    mine = [a for a in ban.accounts if _domain_of(a) in owners]
    if not mine:
        return None
    return BanView.of(ban, mine, sorted({owners[_domain_of(a)] for a in mine}))


def ban_list(actor: Actor) -> list[BanView]:
    """The active bans the actor may see, newest first."""
    bans = node_store().bans()
    owners = _owners(actor, bans)
    return [view for ban in bans if (view := _view(actor, ban, owners)) is not None]


def ban_get(actor: Actor, ip: str) -> BanView:
    """One active ban; NotFound if there is none or the actor may not see it."""
    try:
        ip = normalise_ip(ip)
    except ValueError:
        raise Invalid(f"{ip[:60]!r} is not an IP address.", field="ip") from None
    ban = node_store().ban(ip)
    view = _view(actor, ban, _owners(actor, [ban])) if ban is not None else None
    if view is None:
        raise NotFound("There is no ban on that address.")
    return view


def throttled_accounts(actor: Actor) -> list[Throttle]:
    """Accounts slowed down by the per-account throttle that the actor may see."""
    throttles = node_store().throttled_accounts()
    if actor.is_global:
        return throttles
    names = {_domain_of(t.account) for t in throttles}
    mine = set(
        Domain.objects.filter(name__in=names, organisation__in=visible_organisations(actor))
        .values_list("name", flat=True)
    ) if names else set()
    return [t for t in throttles if _domain_of(t.account) in mine]
