"""API routes for domains, mailboxes and aliases: thin calls into the services and selectors.

Creating a domain or an alias that exists with the same attributes answers 200 with the
existing resource; with different attributes, 409 naming them. A mailbox is different: an
existing address is always 409 `address_taken`, whatever the request says, because comparing
a sent password with the stored one would answer "is this the password?" to anyone allowed to
create mailboxes. A retry is recognised by its Idempotency-Key instead (tenants.idempotency),
which replays the first response, generated password included. Every resource says which
desired-state `revision` it needs and whether it is `live` (its node has applied it).
"""

import datetime as dt
import logging
from typing import Literal

import redis
from django.conf import settings
from django.db import InterfaceError, OperationalError, transaction
from ninja import Field, Query, Router, Schema
from ninja.responses import Status
from pydantic import StrictBool

from identity.selectors import verification_record
from identity.services import domain_verify_now
from mailboxes.models import Alias, Domain, Mailbox
from mailboxes.selectors import (
    MAILBOX_ORDER,
    alias_get,
    alias_list,
    domain_get,
    domain_get_for_write,
    domain_list,
    mailbox_get,
    mailbox_list,
)
from mailboxes.services import (
    MAX_ALIAS_DESTINATIONS,
    MAX_QUOTA_MB,
    AddressTaken,
    BulkResult,
    BulkRow,
    address_parts,
    alias_create_or_get,
    alias_delete,
    alias_update,
    domain_create,
    domain_delete,
    domain_update,
    mailbox_bulk_create,
    mailbox_delete,
    mailbox_rename,
    mailbox_restore,
    mailbox_set_password,
    mailbox_set_status,
    mailbox_update,
)
from mailhost.backend.render import ROLE_LOCAL_PARTS
from mailhost.errors import Conflict, Invalid, NotFound
from mailhost.keyset import COUNT_CAP, keyset_page
from mailhost.names import InvalidName, normalise_domain, split_address
from tenants.access import Actor, require_write
from tenants.api_common import (
    READ_ERRORS,
    WRITE_ERRORS,
    Address,
    ErrorOut,
    Input,
    Integer,
    PageOut,
    PageQuery,
    Slug,
    Text,
    large_body,
    organisation_for,
    paginate,
)

logger = logging.getLogger(__name__)

router = Router()

Password = Text(200, min_length=1)


def _quota():
    return Field(None, ge=1, le=MAX_QUOTA_MB, description="MB; empty: the domain's default.")


def _live(obj, node, domain: Domain) -> bool:
    """Applied on the mail node, and on a domain whose ownership is verified (until then
    nothing of it reaches the node, whatever the revision)."""
    return domain.verified_at is not None and node.applied_revision >= obj.revision


def _search(raw: str | None) -> str | None:
    return (raw or "").strip() or None


# --- domains -------------------------------------------------------------------------------


class VerificationOut(Schema):
    name: str = Field(description="Publish a TXT record at this name…")
    type: Literal["TXT"]
    value: str = Field(description="…with this value, then POST …/verify.")


class DomainOut(Schema):
    name: str = Field(description="IDNA A-label form, as stored.")
    display_name: str = Field(description="Unicode form, for people.")
    organisation: str
    status: Literal["active", "disabled"]
    max_mailboxes: int | None = Field(description="Set by the service's staff; null: no limit.")
    default_quota_mb: int
    verified: bool = Field(
        description="Ownership proven. Until then the domain is not routed or signed and its "
        "mailboxes and aliases wait (they can be prepared)."
    )
    verified_at: dt.datetime | None
    verification_method: Literal["", "dns", "staff", "special-use", "parent", "existing"]
    verification: VerificationOut | None = Field(
        description="The record that proves ownership; null once verified otherwise than by DNS."
    )
    role_addresses: list[str] = Field(
        description="postmaster@ and abuse@: every hosted domain accepts them (RFC 5321, RFC "
        "2142). A mailbox or alias you create at one of them receives it yourself."
    )
    role_target: str = Field(
        description="Where the role addresses go: a mailbox or alias of yours; empty for the "
        "automatic choice (the first admin's mailbox if hosted here, else the service's "
        "operator mailbox)."
    )
    revision: int = Field(description="The desired-state revision this domain needs.")
    live: bool = Field(
        description="True once the domain is verified and the mail node has applied that revision."
    )
    created_at: dt.datetime

    @staticmethod
    def resolve_organisation(obj: Domain) -> str:
        return obj.organisation.slug

    @staticmethod
    def resolve_role_addresses(obj: Domain) -> list[str]:
        return [f"{local}@{obj.name}" for local in ROLE_LOCAL_PARTS]

    @staticmethod
    def resolve_verified(obj: Domain) -> bool:
        return obj.is_verified

    @staticmethod
    def resolve_verification(obj: Domain) -> dict | None:
        record = verification_record(obj)
        return None if record is None else {"name": record.name, "type": "TXT",
                                            "value": record.value}

    @staticmethod
    def resolve_live(obj: Domain) -> bool:
        return _live(obj, obj.node, obj)


class DomainIn(Input):
    name: Text(253, min_length=1)
    organisation: Slug | None = Field(None, description="Needed if you act in several.")
    max_mailboxes: Integer | None = Field(
        None, ge=0, le=10**6, description="Staff only (403 otherwise). Empty: no limit."
    )
    default_quota_mb: Integer | None = _quota()
    node: Slug | None = Field(
        None, description="Staff only (403 otherwise): the name of the mail node the domain "
        "lives on. Empty: the least-loaded node (fewest mailboxes, then fewest domains)."
    )


class DomainPatch(Input):
    status: Literal["active", "disabled"] | None = None
    max_mailboxes: Integer | None = Field(
        None, ge=0, le=10**6, description="Staff only (403 otherwise). null: no limit."
    )
    default_quota_mb: Integer | None = _quota()
    role_target: Text(254) | None = Field(
        None,
        description="Where postmaster@ and abuse@ go: a mailbox or alias of your organisation "
        "that receives mail (422 `role_target_not_deliverable` otherwise); \"\" for the "
        "automatic choice.",
    )


class DomainQuery(PageQuery):
    organisation: Slug | None = None
    status: Literal["active", "disabled"] | None = None
    search: Text(253) | None = Field(None, description="Part of the domain name.")


class DomainPage(PageOut):
    items: list[DomainOut]


@router.get("/domains", response={200: DomainPage, READ_ERRORS: ErrorOut}, tags=["domains"])
def domains_list(request, query: Query[DomainQuery]):
    organisation = None
    if query.organisation:
        organisation = organisation_for(request.auth, query.organisation)
    domains = domain_list(request.auth, organisation=organisation).order_by("name", "id")
    if query.status:
        domains = domains.filter(status=query.status)
    if search := _search(query.search):
        domains = domains.filter(name__contains=search.lower())
    return paginate(domains, query)


@router.post(
    "/domains",
    response={201: DomainOut, 200: DomainOut, WRITE_ERRORS: ErrorOut},
    tags=["domains"],
)
def domains_create(request, payload: DomainIn):
    """Claim a domain (201), or answer 200 if it is already yours with these attributes. A new
    domain goes live once its ownership is verified: publish the TXT record in `verification`,
    then POST /domains/{name}/verify (names under .test, .example, .invalid and .localhost,
    and names under a domain you verified, are verified at once)."""
    organisation = organisation_for(request.auth, payload.organisation)
    try:
        domain = domain_create(
            actor=request.auth,
            organisation=organisation,
            name=payload.name,
            max_mailboxes=payload.max_mailboxes,
            default_quota_mb=payload.default_quota_mb,
            node=payload.node,
        )
    except Conflict as exc:
        if exc.code != "domain_taken":
            raise
        existing = domain_list(request.auth, organisation=organisation).filter(
            name=normalise_domain(payload.name)
        ).first()
        if existing is None:
            raise
        given = payload.model_dump(
            exclude_unset=True, include={"max_mailboxes", "default_quota_mb"}
        )
        _refuse_differences(existing.name, existing, given)
        if payload.node and existing.node.name != payload.node:  # staff only (403 before)
            raise Conflict(f"{existing.name} already exists on node {existing.node.name}.",
                           field="node", code="exists_with_different_attributes") from None
        return Status(200, existing)
    return Status(201, domain_get(request.auth, domain.name, organisation=organisation))


@router.get(
    "/domains/{name}", response={200: DomainOut, READ_ERRORS: ErrorOut}, tags=["domains"]
)
def domains_get(request, name: str):
    return domain_get(request.auth, name)


@router.post(
    "/domains/{name}/verify", response={200: DomainOut, WRITE_ERRORS: ErrorOut}, tags=["domains"]
)
def domains_verify(request, name: str):
    """Look up the verification TXT record now and, if it is there, verify the domain (200,
    `verified: true`; it goes live within moments). 409 `not_verified` says what was found
    instead; 503 `dns_unknown` if DNS did not answer. Verifying a verified domain is a 200."""
    domain = domain_get_for_write(request.auth, name)
    return domain_verify_now(actor=request.auth, domain=domain)


@router.patch(
    "/domains/{name}", response={200: DomainOut, WRITE_ERRORS: ErrorOut}, tags=["domains"]
)
def domains_update(request, name: str, payload: DomainPatch):
    """Change status, mailbox limit, default quota or where postmaster@ and abuse@ go.
    `max_mailboxes: null` removes the limit; `role_target: ""` restores the automatic choice."""
    domain = domain_get_for_write(request.auth, name)
    changes = payload.model_dump(exclude_unset=True)
    updated = domain_update(
        actor=request.auth,
        domain=domain,
        status=changes.get("status"),
        max_mailboxes=changes.get("max_mailboxes", ...),
        default_quota_mb=changes.get("default_quota_mb"),
        role_target=changes.get("role_target"),
    )
    updated.node = domain.node
    updated.organisation = domain.organisation
    return updated


@router.delete(
    "/domains/{name}", response={204: None, WRITE_ERRORS: ErrorOut}, tags=["domains"]
)
def domains_delete(request, name: str):
    """Stop hosting a domain; refused (409) while it has mailboxes or aliases."""
    domain_delete(actor=request.auth, domain=domain_get_for_write(request.auth, name))
    return Status(204, None)


# --- mailboxes -----------------------------------------------------------------------------


class MailboxOut(Schema):
    address: str
    local_part: str
    domain: str
    display_name: str
    quota_mb: int
    status: Literal["active", "suspended", "disabled"] = Field(
        description="suspended: receives, cannot log in; disabled: no login, mail refused."
    )
    deleted: bool
    deleted_at: dt.datetime | None = Field(description="Empty unless deleted.")
    revision: int = Field(description="The desired-state revision this mailbox needs.")
    live: bool = Field(description="True once the mail node has applied that revision.")
    created_at: dt.datetime
    updated_at: dt.datetime

    @staticmethod
    def resolve_domain(obj: Mailbox) -> str:
        return obj.domain.name

    @staticmethod
    def resolve_deleted(obj: Mailbox) -> bool:
        return obj.deleted_at is not None

    @staticmethod
    def resolve_live(obj: Mailbox) -> bool:
        return _live(obj, obj.domain.node, obj.domain)


class MailboxWithPasswordOut(MailboxOut):
    password: str | None = Field(
        description="The generated password, shown in this response only; null if you set one."
    )


class MailboxIn(Input):
    address: Address
    password: Password | None = Field(None, description="Empty: one is generated and returned.")
    display_name: Text(200) | None = None
    quota_mb: Integer | None = _quota()


class MailboxPatch(Input):
    address: Address | None = Field(None, description="Rename within the same domain.")
    display_name: Text(200) | None = None
    quota_mb: Integer | None = _quota()
    status: Literal["active", "suspended", "disabled"] | None = None


class PasswordIn(Input):
    password: Password | None = Field(None, description="Empty: a new one is generated.")


class MailboxQuery(PageQuery):
    cursor: Text(400) | None = Field(
        None, description="`next_cursor` of the previous page: the rows after it, as fast at "
        "the millionth row as at the first (prefer it to a large `offset`)."
    )
    domain: Text(253) | None = None
    status: Literal["active", "suspended", "disabled", "deleted"] | None = None
    search: Text(254) | None = Field(None, description="Part of the address or display name.")


class MailboxPage(PageOut):
    items: list[MailboxOut]
    count_capped: bool = Field(
        description=f"True when more than {COUNT_CAP} rows match: `count` is then {COUNT_CAP}."
    )
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page.")


class MailboxGetQuery(Schema):
    include_deleted: bool = Field(False, description="Also find a deleted, restorable mailbox.")


def _domain_of(actor: Actor, raw_address: str) -> tuple[str, Domain]:
    """The raw local part and the actor's domain of an address; a 404 names the field."""
    local_part, domain_name = address_parts(raw_address)
    try:
        return local_part, domain_get(actor, domain_name)
    except NotFound:
        raise NotFound(f"The domain {domain_name!r} was not found.", field="address") from None


def _refuse_differences(what: str, existing, given: dict) -> None:
    """409 naming each attribute of an idempotent create that differs from what exists.

    Never given a password: comparing one would make this an oracle for it."""
    differ = [field for field, value in given.items() if getattr(existing, field) != value]
    if differ:
        raise Conflict(
            f"{what} already exists with a different {', '.join(differ)}.",
            field=differ[0],
            code="exists_with_different_attributes",
        )


def _bulk_row(row: MailboxIn, index: int = 0) -> BulkRow:
    display_name = row.display_name.strip() if row.display_name is not None else None
    return BulkRow(
        index=index, address=row.address, password=row.password,
        display_name=display_name or "", quota_mb=row.quota_mb,
    )


def _mailbox_create(actor: Actor, payload: MailboxIn) -> tuple[Mailbox, str | None]:
    """(mailbox, generated password), by the bulk service with one row. The domain row lock
    in the service makes one winner among concurrent creators; the others get 409 (a retry
    replays by Idempotency-Key)."""
    _, domain = _domain_of(actor, payload.address)
    [result], stopped = mailbox_bulk_create(
        actor=actor, organisation=domain.organisation, rows=[_bulk_row(payload)]
    )
    if stopped is not None:
        raise stopped
    if isinstance(result.error, AddressTaken):
        raise AddressTaken(
            f"{result.error.detail[:-1]}. To retry a create whose answer was lost, send the "
            "same request with the same Idempotency-Key.",
            field="address",
        )
    if result.error is not None:
        raise result.error
    return result.mailbox, result.password


def _mailbox_for_write(actor: Actor, address: str, *, deleted: bool = False) -> Mailbox:
    mailbox = _deleted_mailbox(actor, address) if deleted else mailbox_get(actor, address)
    require_write(actor, mailbox.domain.organisation_id, "That mailbox")
    return mailbox


def _with_password(mailbox: Mailbox, password: str | None) -> Mailbox:
    mailbox.password = password
    return mailbox


@router.get(
    "/mailboxes", response={200: MailboxPage, READ_ERRORS: ErrorOut}, tags=["mailboxes"]
)
def mailboxes_list(request, query: Query[MailboxQuery]):
    """Mailboxes in address order, a page at a time: follow `next_cursor` (keyset pagination;
    the cost of a page does not grow with its position). `count` is exact up to a cap."""
    domain = None
    if query.domain:
        try:
            domain = domain_get(request.auth, query.domain)
        except NotFound:
            raise NotFound("That domain was not found.", field="domain") from None
    mailboxes = mailbox_list(
        request.auth, domain=domain, status=query.status, search=_search(query.search)
    ).select_related("domain__node")
    page = keyset_page(
        mailboxes, MAILBOX_ORDER, limit=query.limit, offset=query.offset, after=query.cursor
    )
    following = query.offset + len(page.items)
    return {
        "items": page.items,
        "count": page.count,
        "count_capped": page.count_capped,
        "limit": query.limit,
        "offset": query.offset,
        "next_offset": following if page.next_cursor else None,
        "next_cursor": page.next_cursor,
    }


@router.post(
    "/mailboxes",
    response={201: MailboxWithPasswordOut, WRITE_ERRORS: ErrorOut},
    tags=["mailboxes"],
)
def mailboxes_create(request, payload: MailboxIn):
    """Create a mailbox (201). Without a password one is generated and returned in this
    response only. An address that exists is 409 `address_taken`, whatever else is sent; to
    retry safely, send an Idempotency-Key: the retry gets the first response again."""
    mailbox, generated = _mailbox_create(request.auth, payload)
    return Status(201, _with_password(mailbox, generated))


class BulkIn(Input):
    mailboxes: list[MailboxIn] = Field(
        ..., min_length=1, max_length=settings.API_BULK_MAX_ENTRIES
    )
    atomic: StrictBool = Field(
        False, description="true: all rows or none; false: each row on its own."
    )
    organisation: Slug | None = Field(None, description="Needed if you act in several.")


class BulkRowOut(Schema):
    index: int
    address: str
    result: Literal["created", "exists", "failed", "rolled_back"] = Field(
        description="exists: the address is already a mailbox (409, nothing compared)."
    )
    status: int = Field(description="The status this row alone would have had.")
    mailbox: MailboxOut | None = None
    password: str | None = Field(None, description="A generated password, shown once.")
    error: ErrorOut | None = None


class BulkOut(Schema):
    atomic: bool
    created: int
    existing: int
    failed: int
    results: list[BulkRowOut]
    code: str | None = Field(None, description="bulk_interrupted: see `detail`.")
    detail: str | None = None


class BulkFailedOut(BulkOut):
    code: str
    detail: str


def _row_out(result: BulkResult, stopped: Exception | None) -> dict:
    row = {"index": result.index, "address": result.address, "result": result.outcome}
    if result.outcome == "created":
        return row | {"status": 201, "mailbox": result.mailbox, "password": result.password}
    if result.outcome == "not_done":
        return _not_done(result.index, result.address, stopped)
    if result.outcome == "rolled_back":
        return row | {"status": 201}
    exc = result.error
    error = {"code": exc.code, "detail": exc.detail, "field": exc.field}
    return row | {"status": exc.status, "error": error}


def _not_done(index: int, address: str, stopped: Exception) -> dict:
    """The result of a row that was never committed because the request was interrupted."""
    if isinstance(stopped, OperationalError | InterfaceError):
        status, code, why = 503, "database_unavailable", "the database became unavailable"
    elif isinstance(stopped, redis.RedisError):
        status, code, why = 503, "broker_unavailable", "the message broker became unavailable"
    else:
        status, code, why = 500, "server_error", "something went wrong on our side"
    detail = f"Not created: {why} before this row was committed. Retry this row."
    error = {"code": code, "detail": detail, "field": None}
    return {"index": index, "address": address, "result": "failed", "status": status,
            "error": error}


def _bulk_summary(atomic: bool, results: list[dict]) -> dict:
    count = {"created": 0, "exists": 0, "failed": 0, "rolled_back": 0}
    for row in results:
        count[row["result"]] += 1
    return {
        "atomic": atomic,
        "created": count["created"],
        "existing": count["exists"],
        "failed": count["failed"],
        "results": results,
    }


@router.post(
    "/mailboxes/bulk",
    response={200: BulkOut, 422: BulkFailedOut | ErrorOut, WRITE_ERRORS - {422}: ErrorOut},
    tags=["mailboxes"],
)
@large_body
def mailboxes_bulk(request, payload: BulkIn):
    """Create up to API_BULK_MAX_ENTRIES mailboxes, each like POST /mailboxes, with a result
    per row. An address that is already a mailbox is `exists` (409), whatever the row sends.
    `atomic: false` (default): each row succeeds or fails on its own (rows commit in small
    groups) and failures are listed. If the database (or anything else) fails part-way, the
    answer is still 200 and row by row: the committed rows with their generated passwords,
    the others `failed` with the status of the failure (503), and `code: bulk_interrupted`.
    Only when no row was committed is the answer the failure itself (503).
    `atomic: true`: all or nothing; if any row fails or exists nothing is created and the
    answer is 422, rows that would have worked marked `rolled_back`. All rows are in one
    organisation's domains (a token's own; name it with `organisation` if you act in
    several). An Idempotency-Key replays the first answer, passwords included."""
    actor = request.auth
    organisation = organisation_for(actor, payload.organisation)
    rows = [_bulk_row(row, index) for index, row in enumerate(payload.mailboxes)]
    results, stopped = mailbox_bulk_create(
        actor=actor, organisation=organisation, rows=rows, atomic=payload.atomic
    )
    summary = _bulk_summary(payload.atomic, [_row_out(r, stopped) for r in results])
    if stopped is not None:
        if not summary["created"]:
            raise stopped  # nothing was written: the failure's own answer is the truth
        logger.error("bulk create interrupted after %d rows", summary["created"],
                     exc_info=stopped)
        summary["code"] = "bulk_interrupted"
        summary["detail"] = (
            f"Interrupted part-way: {summary['created']} row(s) were created and are listed "
            "with their generated passwords (shown only here); rows marked failed with "
            "status 503 or 500 were not written and can be retried."
        )
        return summary
    if payload.atomic and any(r.outcome != "created" for r in results):
        failures = summary["failed"] + summary["existing"]
        summary["code"] = "bulk_rolled_back"
        summary["detail"] = f"{failures} row(s) failed, so nothing was created (atomic)."
        return Status(422, summary)
    return summary


@router.get(
    "/mailboxes/{address}", response={200: MailboxOut, READ_ERRORS: ErrorOut}, tags=["mailboxes"]
)
def mailboxes_get(request, address: str, query: Query[MailboxGetQuery]):
    """Poll this until `live` is true to know the mailbox works on the mail node."""
    try:
        return mailbox_get(request.auth, address)
    except NotFound:
        if not query.include_deleted:
            raise
    return _deleted_mailbox(request.auth, address)


def _deleted_mailbox(actor: Actor, address: str) -> Mailbox:
    """The most recently deleted mailbox at `address` (there may be several over time)."""
    try:
        local_part, domain_name = split_address(address)
    except InvalidName:
        raise NotFound("That mailbox was not found.") from None
    mailbox = (
        mailbox_list(actor, status="deleted")
        .filter(local_part=local_part, domain__name=domain_name)
        .order_by("-deleted_at", "-id")
        .first()
    )
    if mailbox is None:
        raise NotFound("That mailbox was not found.")
    return mailbox


@router.patch(
    "/mailboxes/{address}", response={200: MailboxOut, WRITE_ERRORS: ErrorOut}, tags=["mailboxes"]
)
def mailboxes_update(request, address: str, payload: MailboxPatch):
    """Change display name, quota or status, or rename within the domain; all or nothing."""
    actor = request.auth
    mailbox = _mailbox_for_write(actor, address)
    changes = payload.model_dump(exclude_unset=True, exclude_none=True)
    with transaction.atomic():
        if "address" in changes:
            local_part = _rename_target(mailbox, changes["address"])
            mailbox = mailbox_rename(actor=actor, mailbox=mailbox, local_part=local_part)
        if "display_name" in changes or "quota_mb" in changes:
            mailbox = mailbox_update(
                actor=actor,
                mailbox=mailbox,
                display_name=changes.get("display_name"),
                quota_mb=changes.get("quota_mb"),
            )
        if "status" in changes:
            mailbox = mailbox_set_status(actor=actor, mailbox=mailbox, status=changes["status"])
    return mailbox


def _rename_target(mailbox: Mailbox, raw: str) -> str:
    try:
        local_part, domain_name = split_address(raw)
    except InvalidName as exc:
        raise Invalid(str(exc), field="address") from None
    if domain_name != mailbox.domain.name:
        raise Invalid(
            "A mailbox can be renamed only within its domain; create one in the other domain.",
            field="address",
        )
    return local_part


@router.delete(
    "/mailboxes/{address}", response={200: MailboxOut, WRITE_ERRORS: ErrorOut}, tags=["mailboxes"]
)
def mailboxes_delete(request, address: str):
    """Delete: the address stops working at once; the mail is kept for the retention period
    (POST …/restore brings it back). Answers the deleted mailbox, whose `live` says when the
    deletion has reached the mail node."""
    mailbox = _mailbox_for_write(request.auth, address)
    return mailbox_delete(actor=request.auth, mailbox=mailbox)


@router.post(
    "/mailboxes/{address}/password",
    response={200: MailboxWithPasswordOut, WRITE_ERRORS: ErrorOut},
    tags=["mailboxes"],
)
def mailboxes_password(request, address: str, payload: PasswordIn | None = None):
    """Rotate the password: send none to get a generated one (in this response only), or set
    the one you send. Poll the mailbox until `live` to know the new password works."""
    mailbox = _mailbox_for_write(request.auth, address)
    password = payload.password if payload is not None else None
    generated = mailbox_set_password(actor=request.auth, mailbox=mailbox, password=password)
    return _with_password(mailbox, generated)


def _status_action(request, address: str, status: str) -> Mailbox:
    mailbox = _mailbox_for_write(request.auth, address)
    return mailbox_set_status(actor=request.auth, mailbox=mailbox, status=status)


@router.post(
    "/mailboxes/{address}/suspend",
    response={200: MailboxOut, WRITE_ERRORS: ErrorOut},
    tags=["mailboxes"],
)
def mailboxes_suspend(request, address: str):
    """Suspend: mail is still received, but nobody can log in."""
    return _status_action(request, address, "suspended")


@router.post(
    "/mailboxes/{address}/resume",
    response={200: MailboxOut, WRITE_ERRORS: ErrorOut},
    tags=["mailboxes"],
)
def mailboxes_resume(request, address: str):
    """Make a suspended or disabled mailbox active again."""
    return _status_action(request, address, "active")


@router.post(
    "/mailboxes/{address}/restore",
    response={200: MailboxOut, WRITE_ERRORS: ErrorOut},
    tags=["mailboxes"],
)
def mailboxes_restore(request, address: str):
    """Bring back the most recently deleted mailbox at this address, with its mail, within the
    retention period; 409 if the address has been taken since. Restoring a mailbox that is
    not deleted changes nothing."""
    actor = request.auth
    try:
        mailbox = _mailbox_for_write(actor, address, deleted=True)
    except NotFound:
        return _mailbox_for_write(actor, address)
    return mailbox_restore(actor=actor, mailbox=mailbox)


# --- aliases -------------------------------------------------------------------------------


class AliasOut(Schema):
    address: str = Field(description="user@domain, or @domain for the catch-all.")
    local_part: str
    domain: str
    catch_all: bool
    destinations: list[str]
    active: bool
    revision: int = Field(description="The desired-state revision this alias needs.")
    live: bool = Field(description="True once the mail node has applied that revision.")
    created_at: dt.datetime

    @staticmethod
    def resolve_domain(obj: Alias) -> str:
        return obj.domain.name

    @staticmethod
    def resolve_catch_all(obj: Alias) -> bool:
        return obj.is_catch_all

    @staticmethod
    def resolve_live(obj: Alias) -> bool:
        return _live(obj, obj.domain.node, obj.domain)


class AliasIn(Input):
    address: Address = Field(description="user@domain, or @domain for a catch-all.")
    destinations: list[Address] = Field(..., min_length=1, max_length=MAX_ALIAS_DESTINATIONS)
    active: StrictBool = True


class AliasPatch(Input):
    destinations: list[Address] | None = Field(
        None, min_length=1, max_length=MAX_ALIAS_DESTINATIONS
    )
    active: StrictBool | None = None


class AliasQuery(PageQuery):
    domain: Text(253) | None = None
    search: Text(254) | None = Field(None, description="Part of the address.")


class AliasPage(PageOut):
    items: list[AliasOut]


@router.get("/aliases", response={200: AliasPage, READ_ERRORS: ErrorOut}, tags=["aliases"])
def aliases_list(request, query: Query[AliasQuery]):
    domain = None
    if query.domain:
        try:
            domain = domain_get(request.auth, query.domain)
        except NotFound:
            raise NotFound("That domain was not found.", field="domain") from None
    aliases = alias_list(request.auth, domain=domain, search=_search(query.search))
    return paginate(aliases.select_related("domain__node"), query)


@router.post(
    "/aliases",
    response={201: AliasOut, 200: AliasOut, WRITE_ERRORS: ErrorOut},
    tags=["aliases"],
)
def aliases_create(request, payload: AliasIn):
    """Create an alias or catch-all (201); 200 if it exists with these destinations."""
    local_part, domain = _domain_of(request.auth, payload.address)
    alias, created = alias_create_or_get(
        actor=request.auth, domain=domain, local_part=local_part,
        destinations=payload.destinations,
        active=payload.active if "active" in payload.model_fields_set else None,
    )
    if not created:
        return Status(200, alias)
    alias.domain = domain
    return Status(201, alias)


def _alias_for_write(actor: Actor, address: str) -> Alias:
    alias = alias_get(actor, address)
    require_write(actor, alias.domain.organisation_id, "That alias")
    return alias


@router.get(
    "/aliases/{address}", response={200: AliasOut, READ_ERRORS: ErrorOut}, tags=["aliases"]
)
def aliases_get(request, address: str):
    """`address` is user@domain, or @domain for the catch-all."""
    return alias_get(request.auth, address)


@router.patch(
    "/aliases/{address}", response={200: AliasOut, WRITE_ERRORS: ErrorOut}, tags=["aliases"]
)
def aliases_update(request, address: str, payload: AliasPatch):
    alias = _alias_for_write(request.auth, address)
    changes = payload.model_dump(exclude_unset=True, exclude_none=True)
    return alias_update(
        actor=request.auth,
        alias=alias,
        destinations=changes.get("destinations"),
        active=changes.get("active"),
    )


@router.delete(
    "/aliases/{address}", response={204: None, WRITE_ERRORS: ErrorOut}, tags=["aliases"]
)
def aliases_delete(request, address: str):
    alias_delete(actor=request.auth, alias=_alias_for_write(request.auth, address))
    return Status(204, None)
