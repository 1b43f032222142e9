"""Who is acting, and what they may do: the one place tenant access is decided."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet

from mailhost.errors import Forbidden, NotFound
from tenants.models import WRITE_ROLES, ApiToken, Membership, Organisation

if TYPE_CHECKING:
    from mailboxes.models import Mailbox


@dataclass(frozen=True)
class Actor:
    """The user, API token or operator command behind a service call, and its IP address."""

    user: AbstractBaseUser | None = None
    token: ApiToken | None = None
    system: str | None = None  # e.g. "manage.py addmailbox": the box's operator, all-powerful
    ip: str | None = None
    # A mailbox holder signed in to /mailbox/: may act on that one mailbox and nothing else.
    mailbox: Mailbox | None = None

    @property
    def label(self) -> str:
        if self.mailbox is not None:
            return self.mailbox.address
        if self.token is not None:
            return f"token {self.token.name} ({self.token.hint}…)"
        if self.user is not None:
            return self.user.get_username()
        return self.system or "system"

    @property
    def is_global(self) -> bool:
        """Staff users and operator commands see every organisation."""
        if self.mailbox is not None or self.token is not None:
            return False
        if self.user is not None:
            return bool(self.user.is_active and self.user.is_superuser)
        return self.system is not None

    def role_in(self, organisation_id: int) -> str | None:
        if self.mailbox is not None:
            return None  # a mailbox holder has no role in any organisation
        if self.token is not None:
            if self.token.organisation_id != organisation_id:
                return None
            return "viewer" if self.token.read_only else "admin"
        if self.user is None or not self.user.is_authenticated:
            return None
        return (
            Membership.objects.filter(user=self.user, organisation_id=organisation_id)
            .values_list("role", flat=True)
            .first()
        )


SYSTEM = Actor(system="system")


def visible_organisations(actor: Actor) -> QuerySet[Organisation]:
    if actor.mailbox is not None:
        return Organisation.objects.none()
    if actor.is_global:
        return Organisation.objects.all()
    if actor.token is not None:
        return Organisation.objects.filter(pk=actor.token.organisation_id)
    if actor.user is None or not actor.user.is_authenticated:
        return Organisation.objects.none()
    return Organisation.objects.filter(memberships__user=actor.user)


def require_read(actor: Actor, organisation_id: int, what: str = "That") -> None:
    """Raise NotFound unless the actor may see this organisation's objects."""
    if actor.is_global:
        return
    if actor.role_in(organisation_id) is None:
        raise NotFound(f"{what} was not found.")


def require_write(actor: Actor, organisation_id: int, what: str = "That") -> None:
    """NotFound for another tenant's object; Forbidden for a read-only member or token."""
    if actor.is_global:
        return
    role = actor.role_in(organisation_id)
    if role is None:
        raise NotFound(f"{what} was not found.")
    if role not in WRITE_ROLES:
        raise Forbidden("Your role in this organisation is read-only.")


def require_owner(actor: Actor, organisation_id: int) -> None:
    if actor.is_global:
        return
    role = actor.role_in(organisation_id)
    if role is None:
        raise NotFound("That organisation was not found.")
    if role != "owner":
        raise Forbidden("Only an owner of this organisation can do that.")
