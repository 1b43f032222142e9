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
    # Set only by the staff API's authentication (mailhost.api): a staff token is global there
    # and nowhere else, so a staff token that reached any other door would be a nobody.
    staff_api: bool = False

    @property
    def label(self) -> str:
        if self.mailbox is not None:
            return self.mailbox.address
        if self.token is not None:
            kind = "staff token" if self.token.staff else "token"
            return f"{kind} {self.token.name} ({self.token.hint}…)"
        if self.user is not None:
            return self.user.get_username()
        return self.system or "system"

    @property
    def is_global(self) -> bool:
        """Staff users, operator commands and (on the staff API) staff tokens see every
        organisation."""
        if self.mailbox is not None:
            return False
        if self.token is not None:
            return self.staff_api and self.token.staff and self.token.organisation_id is None
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
    """NotFound for another tenant's object; Forbidden for a read-only member or token, and
    for any member while the organisation is suspended."""
    if actor.is_global:
        return
    role = actor.role_in(organisation_id)
    if role is None:
        raise NotFound(f"{what} was not found.")
    if role not in WRITE_ROLES:
        raise Forbidden("Your role in this organisation is read-only.")
    _refuse_if_suspended(actor, organisation_id)


def require_owner(actor: Actor, organisation_id: int) -> None:
    if actor.is_global:
        return
    role = actor.role_in(organisation_id)
    if role is None:
        raise NotFound("That organisation was not found.")
    if role != "owner":
        raise Forbidden("Only an owner of this organisation can do that.")
    _refuse_if_suspended(actor, organisation_id)


def require_staff(actor: Actor, what: str = "do that") -> None:
    """Install-wide operations (onboarding, suspension): staff users, operator commands and
    staff tokens on the staff API only."""
    if not actor.is_global:
        raise Forbidden(f"Only staff can {what}.", code="staff_only")


SUSPENDED_DETAIL = (
    "This organisation is suspended: its mail is stopped and nothing can be changed until "
    "staff lift the suspension."
)


def _refuse_if_suspended(actor: Actor, organisation_id: int) -> None:
    if actor.token is not None:  # its organisation came with it: no query per bulk row
        suspended = actor.token.organisation.suspended
    else:
        suspended = Organisation.objects.filter(
            pk=organisation_id, suspended_at__isnull=False
        ).exists()
    if suspended:
        raise Forbidden(SUSPENDED_DETAIL, code="organisation_suspended")
