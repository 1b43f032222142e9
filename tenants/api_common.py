"""What every API router shares: the error body, text fields, pagination, the organisation.

Kept apart from `mailhost.api` (which imports the routers) so routers can import it freely.
"""

from typing import Annotated

from django.db.models import QuerySet
from ninja import Field, Schema
from pydantic import AfterValidator, AwareDatetime, StringConstraints, WithJsonSchema

from mailhost.errors import Invalid, NotFound
from mailhost.validation import ONE_LINE_PATTERN, in_utc, one_line_problem
from tenants.access import Actor
from tenants.models import Organisation
from tenants.selectors import organisation_get, organisation_list


def _one_line(value: str) -> str:
    problem = one_line_problem(value)
    if problem:
        raise ValueError(problem)
    return value


def Text(max_length: int, *, min_length: int = 0):  # noqa: N802  (reads as a type)
    """One line of text: no control characters, line separators or bidirectional overrides
    (they would reach audit rows, maps, headers, or mislead whoever reads the name)."""
    schema = {"type": "string", "maxLength": max_length, "pattern": ONE_LINE_PATTERN}
    if min_length:
        schema["minLength"] = min_length
    return Annotated[
        str,
        StringConstraints(min_length=min_length, max_length=max_length),
        AfterValidator(_one_line),
        WithJsonSchema(schema),
    ]


# An ISO 8601 date-time with an offset, stored and compared in UTC.
DateTime = Annotated[AwareDatetime, AfterValidator(in_utc)]

Address = Text(254 + 64, min_length=1)  # checked properly by mailhost.names; this bounds it
Slug = Annotated[str, StringConstraints(max_length=50, pattern=r"^[a-z0-9-]*$")]


class FieldErrorOut(Schema):
    field: str | None = None
    detail: str


class ErrorOut(Schema):
    """Every error: a stable `code`, a human `detail`, and the input at fault when there is one."""

    code: str
    detail: str
    field: str | None = None
    errors: list[FieldErrorOut] | None = None


# The error statuses each kind of operation documents (the handlers in mailhost.api make them).
READ_ERRORS = frozenset({401, 404, 422, 429, 503})
WRITE_ERRORS = frozenset({400, 401, 403, 404, 409, 413, 422, 429, 503})
MAX_PAGE_SIZE = 500


class PageQuery(Schema):
    limit: int = Field(100, ge=1, le=MAX_PAGE_SIZE, description="Items per page.")
    offset: int = Field(0, ge=0, le=10**9, description="Items to skip.")


def paginate(queryset: QuerySet, query: PageQuery) -> dict:
    """A page of a queryset (which must be in a stable order): two queries, whatever the size."""
    count = queryset.count()
    items = list(queryset[query.offset : query.offset + query.limit])
    following = query.offset + len(items)
    return {
        "items": items,
        "count": count,
        "limit": query.limit,
        "offset": query.offset,
        "next_offset": following if following < count else None,
    }


class PageOut(Schema):
    count: int = Field(description="Items matching the filters, on all pages.")
    limit: int
    offset: int
    next_offset: int | None = Field(description="The offset of the next page; null on the last.")


def organisation_for(
    actor: Actor, slug: str | None, *, field: str = "organisation"
) -> Organisation:
    """The organisation a request acts in: named, or the only one the actor belongs to.

    A token always acts in its own organisation; naming another is a 404, like any other
    tenant's object.
    """
    if slug:
        return organisation_get(actor, slug)
    if actor.token is not None:
        return actor.token.organisation
    organisations = list(organisation_list(actor)[:2])
    if not organisations:
        raise NotFound("You are not a member of any organisation.")
    if len(organisations) > 1:
        raise Invalid("You can act in several organisations: name one.", field=field)
    return organisations[0]


def large_body(view_func):
    """Mark a route that accepts bodies up to API_BULK_MAX_BODY_BYTES instead of the default."""
    view_func.large_body = True
    return view_func
