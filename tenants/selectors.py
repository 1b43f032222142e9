"""Reads for tenants, always scoped to what the actor may see."""

import datetime as dt

from django.db.models import Q, QuerySet
from django.utils import timezone

from mailhost.errors import NotFound
from tenants.access import Actor, require_read, require_staff, visible_organisations
from tenants.models import ApiToken, AuditEvent, Invitation, Membership, Organisation


def organisation_get(actor: Actor, slug: str) -> Organisation:
    organisation = visible_organisations(actor).filter(slug=slug).first()
    if organisation is None:
        raise NotFound("That organisation was not found.")
    return organisation


def organisation_list(actor: Actor) -> QuerySet[Organisation]:
    return visible_organisations(actor).order_by("name")


def organisation_list_all(
    actor: Actor, *, suspended: bool | None = None, search: str | None = None
) -> QuerySet[Organisation]:
    """Every client organisation, for staff (the staff API's list and the onboarding pages)."""
    require_staff(actor, "list every organisation")
    organisations = Organisation.objects.all()
    if suspended is not None:
        organisations = organisations.filter(suspended_at__isnull=not suspended)
    if search:
        organisations = organisations.filter(Q(slug__icontains=search) | Q(name__icontains=search))
    return organisations.order_by("name", "id")


def membership_list(actor: Actor, organisation: Organisation) -> QuerySet[Membership]:
    require_read(actor, organisation.pk)
    return organisation.memberships.select_related("user").order_by("user__email")


def invitation_list_open(actor: Actor, organisation: Organisation) -> QuerySet[Invitation]:
    """Invitations not yet accepted and not expired. Members see them, like the member list."""
    require_read(actor, organisation.pk)
    return organisation.invitations.filter(
        accepted_at=None, expires_at__gt=timezone.now()
    ).order_by("email")


def invitation_get_open(actor: Actor, organisation: Organisation, pk: int) -> Invitation:
    invitation = invitation_list_open(actor, organisation).filter(pk=pk).first()
    if invitation is None:
        raise NotFound("That invitation was not found.")
    return invitation


def api_token_list(actor: Actor, organisation: Organisation) -> QuerySet[ApiToken]:
    require_read(actor, organisation.pk)
    return organisation.api_tokens.order_by("-created_at")


def api_token_get(actor: Actor, organisation: Organisation, token_id: int) -> ApiToken:
    require_read(actor, organisation.pk)
    token = organisation.api_tokens.filter(pk=token_id).first()
    if token is None:
        raise NotFound("That token was not found.")
    return token


def audit_list(
    actor: Actor,
    organisation: Organisation,
    *,
    action: str | None = None,
    target: str | None = None,
    actor_label: str | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
) -> QuerySet[AuditEvent]:
    require_read(actor, organisation.pk)
    events = AuditEvent.objects.filter(organisation=organisation)
    if since is not None:
        events = events.filter(created_at__gte=since)
    if until is not None:
        events = events.filter(created_at__lt=until)
    if action:
        events = events.filter(action__startswith=action)
    if target:
        events = events.filter(target__icontains=target)
    if actor_label:
        events = events.filter(actor_label__icontains=actor_label)
    return events.order_by("-created_at", "-id")
