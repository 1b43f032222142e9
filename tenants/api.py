"""API routes for organisations, API tokens and the audit log."""

import datetime as dt
from typing import Any, Literal

from ninja import Field, Path, Query, Router, Schema
from ninja.responses import Status
from pydantic import StrictBool

from mailhost.errors import NotFound
from tenants.access import visible_organisations
from tenants.api_common import (
    READ_ERRORS,
    WRITE_ERRORS,
    DateTime,
    ErrorOut,
    PageOut,
    PageQuery,
    Slug,
    Text,
    organisation_for,
    paginate,
)
from tenants.models import ApiToken, AuditEvent
from tenants.selectors import api_token_get, api_token_list, audit_list, organisation_list
from tenants.services import api_token_create, api_token_revoke

router = Router()

MAX_ID = 2**63 - 1


# --- organisations -------------------------------------------------------------------------


class OrganisationOut(Schema):
    slug: str
    name: str


class OrganisationPage(PageOut):
    items: list[OrganisationOut]


@router.get(
    "/organisations",
    response={200: OrganisationPage, READ_ERRORS: ErrorOut},
    tags=["organisations"],
)
def organisations_list(request, page: Query[PageQuery]):
    """The organisations you can act in (a token: its own)."""
    return paginate(organisation_list(request.auth).order_by("name", "id"), page)


# --- tokens --------------------------------------------------------------------------------


class TokenOut(Schema):
    id: int
    name: str
    hint: str = Field(description="The token's first characters, to recognise it.")
    organisation: str
    read_only: bool
    usable: bool = Field(description="Neither revoked nor expired.")
    created_at: dt.datetime
    expires_at: dt.datetime | None
    revoked_at: dt.datetime | None
    last_used_at: dt.datetime | None

    @staticmethod
    def resolve_organisation(obj: ApiToken) -> str:
        return obj.organisation.slug

    @staticmethod
    def resolve_usable(obj: ApiToken) -> bool:
        return obj.is_usable()


class TokenCreatedOut(TokenOut):
    token: str = Field(description="The secret. Shown this once: only its hash is stored.")


class TokenIn(Schema):
    name: Text(100, min_length=1)
    read_only: StrictBool = False
    expires_at: DateTime | None = Field(None, description="Empty: never expires.")
    organisation: Slug | None = Field(None, description="Needed if you act in several.")


class TokenQuery(PageQuery):
    organisation: Slug | None = None
    include_revoked: bool = False


class TokenPage(PageOut):
    items: list[TokenOut]


def _token(actor, token_id: int) -> ApiToken:
    """A token of any organisation the actor can see; another tenant's is a 404."""
    organisation = visible_organisations(actor).filter(api_tokens__pk=token_id).first()
    if organisation is None:
        raise NotFound("That token was not found.")
    return api_token_get(actor, organisation, token_id)


@router.get("/tokens", response={200: TokenPage, READ_ERRORS: ErrorOut}, tags=["tokens"])
def tokens_list(request, query: Query[TokenQuery]):
    organisation = organisation_for(request.auth, query.organisation)
    tokens = api_token_list(request.auth, organisation).order_by("-created_at", "-id")
    if not query.include_revoked:
        tokens = tokens.filter(revoked_at=None)
    return paginate(tokens, query)


@router.post("/tokens", response={201: TokenCreatedOut, WRITE_ERRORS: ErrorOut}, tags=["tokens"])
def tokens_create(request, payload: TokenIn):
    """Create a token for the organisation. The secret is in this response only.

    Only a signed-in person may: an API token gets 403 `token_cannot_create_tokens`."""
    organisation = organisation_for(request.auth, payload.organisation)
    token, raw = api_token_create(
        actor=request.auth,
        organisation=organisation,
        name=payload.name,
        read_only=payload.read_only,
        expires_at=payload.expires_at,
    )
    token.token = raw
    return Status(201, token)


@router.get("/tokens/{token_id}", response={200: TokenOut, READ_ERRORS: ErrorOut}, tags=["tokens"])
def tokens_get(request, token_id: int = Path(..., ge=1, le=MAX_ID)):
    return _token(request.auth, token_id)


@router.delete(
    "/tokens/{token_id}", response={200: TokenOut, WRITE_ERRORS: ErrorOut}, tags=["tokens"]
)
def tokens_revoke(request, token_id: int = Path(..., ge=1, le=MAX_ID)):
    """Revoke a token at once. Revoking a revoked token changes nothing. An API token may
    revoke only itself; other tokens are revoked by a signed-in person."""
    return api_token_revoke(actor=request.auth, token=_token(request.auth, token_id))


# --- audit ---------------------------------------------------------------------------------


class AuditOut(Schema):
    id: int
    created_at: dt.datetime
    actor: str = Field(description="Who, as they were named at the time.")
    actor_type: Literal["user", "token", "system"]
    ip: str | None
    action: str
    target_type: str
    target: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None

    @staticmethod
    def resolve_actor(obj: AuditEvent) -> str:
        return obj.actor_label

    @staticmethod
    def resolve_actor_type(obj: AuditEvent) -> str:
        if obj.actor_token_id is not None:
            return "token"
        return "user" if obj.actor_user_id is not None else "system"


class AuditQuery(PageQuery):
    organisation: Slug | None = None
    action: Text(64) | None = Field(None, description="A prefix: 'mailbox.', 'mailbox.create'.")
    target: Text(300) | None = Field(None, description="Part of the target, e.g. an address.")
    actor: Text(200) | None = Field(None, description="Part of the actor's name.")
    since: DateTime | None = None
    until: DateTime | None = None


class AuditPage(PageOut):
    items: list[AuditOut]


@router.get("/audit", response={200: AuditPage, READ_ERRORS: ErrorOut}, tags=["audit"])
def audit(request, query: Query[AuditQuery]):
    """Who changed what, newest first."""
    organisation = organisation_for(request.auth, query.organisation)
    events = audit_list(
        request.auth,
        organisation,
        action=query.action,
        target=query.target,
        actor_label=query.actor,
        since=query.since,
        until=query.until,
    )
    return paginate(events, query)
