"""The staff API at /api/v1/staff/: onboard, list, suspend and unsuspend client organisations.

Authenticated by an install-wide staff token (or a staff user's session) only, through its own
door in mailhost.api: an organisation's token is refused here with 403, and a staff token is
refused on every other endpoint, so neither can stand in for the other.
"""

import datetime as dt
from typing import Literal

from django.urls import reverse
from ninja import Field, Query, Router, Schema
from ninja.responses import Status

from mailboxes.services import organisation_set_suspended
from tenants.api_common import (
    READ_ERRORS,
    WRITE_ERRORS,
    ErrorOut,
    PageOut,
    PageQuery,
    Slug,
    Text,
    paginate,
)
from tenants.mail import send_invitation
from tenants.models import Invitation, Organisation
from tenants.selectors import organisation_get, organisation_list_all
from tenants.services import invitation_create, organisation_onboard

router = Router(tags=["staff"])


class StaffOrganisationOut(Schema):
    slug: str
    name: str
    created_at: dt.datetime
    suspended: bool
    suspended_at: dt.datetime | None


class InvitationOut(Schema):
    email: str
    role: str
    expires_at: dt.datetime
    accept_url: str = Field(
        description="The link e-mailed to the invitee (only they can accept it). Shown once."
    )


class OnboardedOut(StaffOrganisationOut):
    invitation: InvitationOut | None


class OnboardIn(Schema):
    slug: Slug = Field(..., min_length=1, description="Lower-case letters, digits, hyphens.")
    name: Text(200, min_length=1)
    admin_email: Text(254) | None = Field(
        None, description="The first admin, invited by e-mail. Empty: invite later."
    )
    admin_role: Literal["owner", "admin"] = "owner"


class InviteIn(Schema):
    email: Text(254, min_length=1)
    role: Literal["owner", "admin", "viewer"] = "owner"


class StaffOrganisationQuery(PageQuery):
    suspended: bool | None = Field(None, description="Only suspended (true) or active (false).")
    search: Text(200) | None = Field(None, description="Part of the slug or name.")


class StaffOrganisationPage(PageOut):
    items: list[StaffOrganisationOut]


def _invitation_out(request, invitation: Invitation, raw: str) -> dict:
    """Mail the invitation (after commit) and describe it, with its link, for the response."""
    link = request.build_absolute_uri(reverse("tenants:accept", args=[raw]))
    inviter = request.auth.user.email if request.auth.user is not None else "Your mail provider"
    send_invitation(invitation=invitation, link=link, inviter=inviter)
    return {"email": invitation.email, "role": invitation.role,
            "expires_at": invitation.expires_at, "accept_url": link}


@router.get("/organisations", response={200: StaffOrganisationPage, READ_ERRORS | {403}: ErrorOut})
def staff_organisations_list(request, query: Query[StaffOrganisationQuery]):
    """Every client organisation, with its suspension."""
    organisations = organisation_list_all(
        request.auth, suspended=query.suspended, search=query.search
    )
    return paginate(organisations, query)


@router.post("/organisations", response={201: OnboardedOut, WRITE_ERRORS: ErrorOut})
def staff_organisations_create(request, payload: OnboardIn):
    """Create a client organisation and invite its first admin (all or nothing)."""
    organisation, invitation, raw = organisation_onboard(actor=request.auth, **payload.model_dump())
    body = _organisation_out(organisation)
    body["invitation"] = _invitation_out(request, invitation, raw) if invitation else None
    return Status(201, body)


@router.get("/organisations/{slug}",
            response={200: StaffOrganisationOut, READ_ERRORS | {403}: ErrorOut})
def staff_organisations_get(request, slug: Slug):
    return organisation_get(request.auth, slug)


@router.post("/organisations/{slug}/suspend",
             response={200: StaffOrganisationOut, WRITE_ERRORS: ErrorOut})
def staff_organisations_suspend(request, slug: Slug):
    """Stop its mail (no delivery, no logins), refuse its tokens; nothing is deleted."""
    organisation = organisation_get(request.auth, slug)
    return organisation_set_suspended(actor=request.auth, organisation=organisation,
                                      suspended=True)


@router.post("/organisations/{slug}/unsuspend",
             response={200: StaffOrganisationOut, WRITE_ERRORS: ErrorOut})
def staff_organisations_unsuspend(request, slug: Slug):
    """Lift a suspension: everything works again as before."""
    organisation = organisation_get(request.auth, slug)
    return organisation_set_suspended(actor=request.auth, organisation=organisation,
                                      suspended=False)


@router.post("/organisations/{slug}/invitations",
             response={201: InvitationOut, WRITE_ERRORS: ErrorOut})
def staff_organisations_invite(request, slug: Slug, payload: InviteIn):
    """Invite an admin to an existing organisation (e.g. when its first one has left)."""
    organisation = organisation_get(request.auth, slug)
    invitation, raw = invitation_create(
        actor=request.auth, organisation=organisation, email=payload.email, role=payload.role
    )
    return Status(201, _invitation_out(request, invitation, raw))


def _organisation_out(organisation: Organisation) -> dict:
    return {
        "slug": organisation.slug, "name": organisation.name,
        "created_at": organisation.created_at, "suspended": organisation.suspended,
        "suspended_at": organisation.suspended_at,
    }
