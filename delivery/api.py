"""The send API: POST /messages, GET /messages/{id}, GET /messages. Thin calls into services.

Idempotency-Key on POST /messages is the message's own (delivery.services.send): the same key
and request answer the same message id, concurrent or later, and the route opts out of the
API-wide replay store, which would answer concurrent retries with 409."""

import base64
import binascii
import datetime as dt
from typing import Annotated, Literal

from django.http import HttpResponse
from ninja import Field, Query, Router, Schema
from ninja.responses import Status
from pydantic import StringConstraints

from delivery.models import Message, RecipientStatus, overall_status
from delivery.selectors import message_get, message_list, quota_usage
from delivery.services import (
    Attachment,
    Draft,
    message_send,
    suppression_add,
    suppression_list,
    suppression_remove,
)
from delivery.services.compose import check_content_type, check_header
from delivery.services.quotas import quota_set
from delivery.services.senders import app_sender_create, app_sender_list, app_sender_revoke
from delivery.services.webhooks import (
    EVENTS,
    webhook_create,
    webhook_delete,
    webhook_deliveries,
    webhook_list,
    webhook_replay,
)
from mailboxes.selectors import domain_get
from mailhost.errors import Invalid
from mailhost.names import InvalidName, normalise_address
from tenants import idempotency
from tenants.api_common import (
    READ_ERRORS,
    WRITE_ERRORS,
    Address,
    DateTime,
    ErrorOut,
    PageOut,
    PageQuery,
    Slug,
    Text,
    organisation_for,
    paginate,
)
from tenants.selectors import organisation_get

router = Router(tags=["messages"])

MAX_RECIPIENTS = 50
MAX_BODY_CHARS = 25 * 1024 * 1024
# A JSON body carrying a 25 MB message: base64 grows it by a third, plus the JSON around it.
MAX_REQUEST_BYTES = 36 * 1024 * 1024
Tag = Annotated[str, StringConstraints(min_length=1, max_length=64,
                                       pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")]
MetaKey = Annotated[str, StringConstraints(min_length=1, max_length=64,
                                           pattern=r"^[A-Za-z0-9_.-]+$")]
HeaderName = Annotated[str, StringConstraints(min_length=1, max_length=76,
                                              pattern=r"^[A-Za-z0-9-]+$")]
Status_ = Literal["queued", "deferred", "delivered", "bounced", "expired", "suppressed"]


class AttachmentIn(Schema):
    filename: Text(255, min_length=1)
    content_type: Text(130, min_length=3) = "application/octet-stream"
    content: str = Field(description="The file, base64.", max_length=MAX_REQUEST_BYTES)


class MessageIn(Schema):
    from_: Address = Field(alias="from", description="A mailbox or alias of your verified domain.")
    from_name: Text(200) = Field("", description="Display name in From:.")
    to: list[Address] = Field([], max_length=MAX_RECIPIENTS)
    cc: list[Address] = Field([], max_length=MAX_RECIPIENTS)
    bcc: list[Address] = Field([], max_length=MAX_RECIPIENTS)
    reply_to: list[Address] = Field([], max_length=5)
    subject: Text(998) = ""
    text: str | None = Field(None, max_length=MAX_BODY_CHARS)
    html: str | None = Field(None, max_length=MAX_BODY_CHARS)
    headers: dict[HeaderName, Text(998)] = Field(
        {}, max_length=30, description="X-… fields of your own, List-Unsubscribe and a few more."
    )
    attachments: list[AttachmentIn] = Field([], max_length=100)
    tags: list[Tag] = Field([], max_length=10)
    metadata: dict[MetaKey, Text(500)] = Field({}, max_length=20)


class RecipientOut(Schema):
    address: str
    kind: Literal["to", "cc", "bcc", "env"] = Field(
        description="env: a submitted message's envelope recipient (To, Cc or Bcc unknown).")
    status: Status_


class MessageOut(Schema):
    id: str = Field(description="The message id (32 hex digits).")
    from_: str = Field(alias="from")
    subject: str
    message_id: str = Field(description="Its Message-ID header field.")
    status: str = Field(description="queued or deferred while any recipient is; else the final "
                        "status all share, or mixed.")
    recipients: list[RecipientOut]
    suppressed: list[str] = Field(description="Recipients on your suppression list: not sent to.")
    tags: list[str]
    metadata: dict[str, str]
    size: int
    via: Literal["api", "smtp", "sendmail"] = Field(
        description="How it was sent: the send API, SMTP submission or sendmail on the host.")
    login: str = Field(description="Who submitted it over SMTP (the login) or sendmail (uid).")
    created_at: dt.datetime


class EventOut(Schema):
    at: dt.datetime
    recipient: str = Field(description="Empty: every recipient still pending (expiry).")
    status: Status_
    dsn: str = Field(description="Enhanced status code (2.0.0, 4.2.0, 5.1.1).")
    reply: str = Field(description="The remote server's reply, or a bounce's diagnostic.")
    relay: str = Field(description="The remote host, host[ip]:port.")
    tls: str = Field(description="The TLS the connection used; 'none' for plain; empty if "
                     "unknown.")
    source: Literal["log", "dsn", "sub"] = Field(
        description="log: an attempt of the node's Postfix; dsn: a bounce that came back to the "
        "VERP address; sub: an SMTP or sendmail submission taken in.")
    next_attempt_at: dt.datetime | None = Field(
        description="A deferral: when the node tries again, at the earliest (its backoff).")


class MessageDetailOut(MessageOut):
    events: list[EventOut] = Field(description="The timeline, oldest first.")


class MessagePage(PageOut):
    items: list[MessageOut]


class MessageQuery(PageQuery):
    organisation: Slug | None = None
    recipient: Text(254) | None = Field(None, description="All or part of a recipient address.")
    status: Status_ | None = Field(None, description="A recipient with this status.")
    tag: Tag | None = None
    since: DateTime | None = None
    until: DateTime | None = None


def message_out(message: Message) -> dict:
    recipients = list(message.recipients.all())
    return {
        "id": message.id.hex, "from": message.sender, "subject": message.subject,
        "message_id": message.message_id,
        "status": overall_status({r.status for r in recipients} or {RecipientStatus.QUEUED}),
        "recipients": recipients, "tags": [t.name for t in message.tags.all()],
        "suppressed": [r.address for r in recipients if r.status == RecipientStatus.SUPPRESSED],
        "metadata": message.metadata, "size": message.size, "via": message.via,
        "login": message.login, "created_at": message.created_at,
    }


def _addresses(values: list[str], field: str) -> tuple[str, ...]:
    out = []
    for i, value in enumerate(values):
        try:
            out.append(normalise_address(value))
        except InvalidName as exc:
            raise Invalid(str(exc), field=f"{field}[{i}]") from exc
    return tuple(dict.fromkeys(out))


def _attachments(items: list[AttachmentIn]) -> tuple[Attachment, ...]:
    out = []
    for i, item in enumerate(items):
        try:
            content = base64.b64decode(item.content, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise Invalid("content is not valid base64.",
                          field=f"attachments[{i}].content") from exc
        out.append(Attachment(item.filename, check_content_type(item.content_type), content))
    return tuple(out)


def draft_from(payload: MessageIn) -> Draft:
    to, cc, bcc = (_addresses(getattr(payload, f), f) for f in ("to", "cc", "bcc"))
    if not (to or cc or bcc):
        raise Invalid("Name at least one recipient in to, cc or bcc.", field="to")
    if len(set(to + cc + bcc)) > MAX_RECIPIENTS:
        raise Invalid(f"At most {MAX_RECIPIENTS} recipients per message.", field="to")
    if payload.text is None and payload.html is None:
        raise Invalid("Give the message a text or an html body (or both).", field="text")
    return Draft(
        sender=_addresses([payload.from_], "from")[0], sender_name=payload.from_name,
        to=to, cc=cc, bcc=bcc, reply_to=_addresses(payload.reply_to, "reply_to"),
        subject=payload.subject, text=payload.text, html=payload.html,
        headers=tuple((check_header(k), v) for k, v in payload.headers.items()),
        attachments=_attachments(payload.attachments), tags=tuple(dict.fromkeys(payload.tags)),
        metadata=tuple(sorted(payload.metadata.items())),
    )


def own_idempotency(view_func):
    """The route keeps its own Idempotency-Key semantics (see mailhost.api)."""
    view_func.own_idempotency = True
    view_func.max_body_bytes = MAX_REQUEST_BYTES
    return view_func


@router.post(
    "/messages",
    response={202: MessageOut, WRITE_ERRORS | {503}: ErrorOut},
    by_alias=True,
    summary="Send a message",
)
@own_idempotency
def messages_send(request, response: HttpResponse, payload: MessageIn,
                  organisation: Slug | None = None):
    """Accept a message for delivery (202) and hand it to the mail node, DKIM-signed for the
    From domain, with the return path bounces+<id>@<domain>. The same Idempotency-Key with the
    same body answers the same message (`Idempotent-Replayed: true`), never a second send; with
    another body, 422. Over 25 MB in all or 18 MB in one part: 413."""
    key = request.headers.get(idempotency.HEADER, "")
    if key:
        idempotency.check_key(key)
    sent = message_send(
        actor=request.auth, organisation=organisation_for(request.auth, organisation),
        draft=draft_from(payload), idempotency_key=key,
    )
    if sent.replayed:
        response["Idempotent-Replayed"] = "true"
    return Status(202, message_out(message_get(request.auth, sent.message.id)))


@router.get("/messages/{message_id}", response={200: MessageDetailOut, READ_ERRORS: ErrorOut},
            by_alias=True, summary="A message and what became of it")
def messages_get(request, message_id: str):
    message = message_get(request.auth, message_id)
    return message_out(message) | {"events": list(message.events.all())}


@router.get("/messages", response={200: MessagePage, READ_ERRORS: ErrorOut}, by_alias=True,
            summary="Sent messages, newest first")
def messages_list(request, query: Query[MessageQuery]):
    organisation = organisation_for(request.auth, query.organisation) if query.organisation \
        else None
    messages = message_list(
        request.auth, organisation=organisation, recipient=query.recipient,
        status=query.status, tag=query.tag, since=query.since, until=query.until,
    )
    page = paginate(messages, query)
    page["items"] = [message_out(m) for m in page["items"]]
    return page


# --- suppressions ------------------------------------------------------------------------------


class SuppressionIn(Schema):
    value: Text(254, min_length=1) = Field(description="An address, or a domain (all of it).")
    detail: Text(500) = ""


class SuppressionOut(Schema):
    value: str
    scope: Literal["address", "domain"]
    reason: Literal["hard_bounce", "manual"]
    detail: str
    message: str | None = Field(description="The id of the message that bounced, if any.")
    created_at: dt.datetime

    @staticmethod
    def resolve_message(obj) -> str | None:
        return obj.message_id.hex if obj.message_id else None


class SuppressionPage(PageOut):
    items: list[SuppressionOut]


class SuppressionQuery(PageQuery):
    organisation: Slug | None = None


@router.get("/suppressions", response={200: SuppressionPage, READ_ERRORS: ErrorOut},
            tags=["suppressions"], summary="The organisation's suppression list")
def suppressions_list(request, query: Query[SuppressionQuery]):
    organisation = organisation_for(request.auth, query.organisation)
    return paginate(suppression_list(request.auth, organisation), query)


@router.post("/suppressions", response={201: SuppressionOut, 200: SuppressionOut,
                                        WRITE_ERRORS: ErrorOut}, tags=["suppressions"],
             summary="Suppress an address or a domain")
def suppressions_add(request, payload: SuppressionIn, organisation: Slug | None = None):
    suppression, created = suppression_add(
        actor=request.auth, organisation=organisation_for(request.auth, organisation),
        value=payload.value, detail=payload.detail,
    )
    return Status(201 if created else 200, suppression)


@router.delete("/suppressions/{value}", response={204: None, WRITE_ERRORS: ErrorOut},
               tags=["suppressions"], summary="Lift a suppression")
def suppressions_remove(request, value: str, organisation: Slug | None = None):
    suppression_remove(actor=request.auth,
                       organisation=organisation_for(request.auth, organisation), value=value)
    return Status(204, None)


# --- webhooks ----------------------------------------------------------------------------------


class WebhookIn(Schema):
    url: Text(2000, min_length=1) = Field(description="https://… (public addresses only).")
    events: list[Literal[tuple(EVENTS)]] = Field(  # type: ignore[valid-type]
        [], description="Statuses to be told about; empty: all of them.")


class WebhookOut(Schema):
    id: int
    url: str
    events: list[str]
    active: bool
    created_at: dt.datetime


class WebhookCreated(WebhookOut):
    secret: str = Field(description="The signing secret: shown this once.")


class WebhookDeliveryOut(Schema):
    id: int
    webhook: int = Field(alias="webhook_id")
    event: str = Field(description="The event id the payload carries (de-duplicate on it).")
    type: str
    state: Literal["pending", "delivered", "dead"]
    attempts: int
    next_attempt_at: dt.datetime | None
    last_status: int | None = Field(description="The endpoint's last HTTP status.")
    last_error: str
    created_at: dt.datetime
    delivered_at: dt.datetime | None

    @staticmethod
    def resolve_event(obj) -> str:
        return obj.payload["id"]

    @staticmethod
    def resolve_type(obj) -> str:
        return obj.payload["type"]

    @staticmethod
    def resolve_next_attempt_at(obj):
        return obj.next_attempt_at if obj.state == "pending" else None


class WebhookDeliveryPage(PageOut):
    items: list[WebhookDeliveryOut]


class WebhookDeliveryQuery(PageQuery):
    organisation: Slug | None = None
    webhook: int | None = None
    state: Literal["pending", "delivered", "dead"] | None = None


@router.get("/webhooks", response={200: list[WebhookOut], READ_ERRORS: ErrorOut},
            tags=["webhooks"], summary="The organisation's webhooks")
def webhooks_list(request, organisation: Slug | None = None):
    return list(webhook_list(request.auth, organisation_for(request.auth, organisation)))


@router.post("/webhooks", response={201: WebhookCreated, WRITE_ERRORS: ErrorOut},
             tags=["webhooks"], summary="Add a webhook; the answer holds its signing secret")
def webhooks_add(request, payload: WebhookIn, organisation: Slug | None = None):
    webhook, secret = webhook_create(
        actor=request.auth, organisation=organisation_for(request.auth, organisation),
        url=payload.url, events=list(payload.events),
    )
    webhook.secret = secret  # the plaintext, this once
    return Status(201, webhook)


@router.delete("/webhooks/{webhook_id}", response={204: None, WRITE_ERRORS: ErrorOut},
               tags=["webhooks"], summary="Remove a webhook (and its deliveries)")
def webhooks_remove(request, webhook_id: int, organisation: Slug | None = None):
    webhook_delete(actor=request.auth, organisation=organisation_for(request.auth, organisation),
                   webhook_id=webhook_id)
    return Status(204, None)


@router.get("/webhook-deliveries", response={200: WebhookDeliveryPage, READ_ERRORS: ErrorOut},
            tags=["webhooks"], summary="Webhook deliveries, newest first (filter: state)")
def webhook_deliveries_list(request, query: Query[WebhookDeliveryQuery]):
    organisation = organisation_for(request.auth, query.organisation)
    return paginate(webhook_deliveries(request.auth, organisation, webhook_id=query.webhook,
                                       state=query.state), query)


@router.post("/webhook-deliveries/{delivery_id}/replay",
             response={202: WebhookDeliveryOut, WRITE_ERRORS: ErrorOut}, tags=["webhooks"],
             summary="Send a delivery again (a dead one, or any)")
def webhook_deliveries_replay(request, delivery_id: int, organisation: Slug | None = None):
    return Status(202, webhook_replay(
        actor=request.auth, organisation=organisation_for(request.auth, organisation),
        delivery_id=delivery_id))


# --- sending quotas ----------------------------------------------------------------------------

staff_router = Router(tags=["staff"])
Limit = Field(None, ge=1, le=10**7)


class QuotaIn(Schema):
    domain: Text(253) | None = Field(None, description="One domain; empty: the organisation.")
    max_recipients: int | None = Limit
    hourly: int | None = Limit
    daily: int | None = Limit
    max_queued: int | None = Field(None, ge=1, le=10**7,
                                   description="Messages waiting in the node's queue at once.")
    login_hourly: int | None = Field(None, ge=1, le=10**7,
                                     description="Messages per hour for each SMTP login.")
    login_daily: int | None = Field(None, ge=1, le=10**7,
                                    description="Messages per day for each SMTP login.")


class QuotaOut(Schema):
    scope: str = Field(description="org:<id> or domain:<name>.")
    max_recipients: int | None
    hourly: int | None
    daily: int | None
    max_queued: int | None
    login_hourly: int | None
    login_daily: int | None


@staff_router.put("/organisations/{slug}/sending-quota",
                  response={200: QuotaOut, WRITE_ERRORS: ErrorOut},
                  summary="Set an organisation's (or one of its domains') sending quota")
def quota_put(request, slug: str, payload: QuotaIn):
    """Enforced by the node on SMTP submission and the send API alike: too many recipients
    is 5.7.1 (API 422); the hourly or daily limit, a full queue and a login's own hourly or
    daily limit (SMTP submission only) are 4.7.1 (API 429 with Retry-After)."""
    organisation = organisation_get(request.auth, slug)
    domain = domain_get(request.auth, payload.domain, organisation=organisation) \
        if payload.domain else None
    return quota_set(actor=request.auth, organisation=organisation, domain=domain,
                     **payload.model_dump(exclude={"domain"}))


class UsageOut(Schema):
    scope: str
    limits: dict[str, int | None]
    used: dict[str, int] = Field(description="Messages this hour (hourly) and today (daily), "
                                 "waiting in the queue now (queued), and refused by a limit "
                                 "today (refused), as the node counts.")


@router.get("/domains/{name}/sending-quota", response={200: list[UsageOut], READ_ERRORS: ErrorOut},
            tags=["domains"], summary="The domain's sending quotas and their use")
def quota_get(request, name: str, organisation: Slug | None = None):
    org = organisation_for(request.auth, organisation) if organisation else None
    domain = domain_get(request.auth, name, organisation=org)
    return [{"scope": scope, **values} for scope, values in quota_usage(domain).items()]


# --- application senders -----------------------------------------------------------------------


class AppSenderIn(Schema):
    name: Text(100, min_length=1) = Field(description="The service it is for.")
    addresses: list[Address] = Field(min_length=1, max_length=50,
                                     description="From addresses it may send as.")


class AppSenderOut(Schema):
    name: str
    login: str = Field(description="The SMTP AUTH user name (not an address).")
    addresses: list[str]
    created_at: dt.datetime
    last_used_at: dt.datetime | None = Field(
        description="Its latest submission the node's event agent saw (SMTP or sendmail).")
    revoked_at: dt.datetime | None


class AppSenderCreatedOut(AppSenderOut):
    password: str = Field(description="Shown in this response only.")


@router.get("/app-senders", response={200: list[AppSenderOut], READ_ERRORS: ErrorOut},
            tags=["app-senders"], summary="Application senders (send-only SMTP credentials)")
def app_senders_list(request, organisation: Slug | None = None):
    return list(app_sender_list(request.auth, organisation_for(request.auth, organisation)))


@router.post("/app-senders", response={201: AppSenderCreatedOut, WRITE_ERRORS: ErrorOut},
             tags=["app-senders"], summary="Create send-only SMTP credentials")
def app_senders_create(request, payload: AppSenderIn, organisation: Slug | None = None):
    """For SMTP submission (587/465) only: IMAP, POP3 and webmail refuse them. The password is
    in this response only."""
    sender, password = app_sender_create(
        actor=request.auth, organisation=organisation_for(request.auth, organisation),
        name=payload.name, addresses=payload.addresses,
    )
    return Status(201, {**AppSenderOut.from_orm(sender).model_dump(), "password": password})


@router.delete("/app-senders/{login}", response={204: None, WRITE_ERRORS: ErrorOut},
               tags=["app-senders"], summary="Revoke an application sender")
def app_senders_revoke(request, login: str, organisation: Slug | None = None):
    app_sender_revoke(actor=request.auth,
                      organisation=organisation_for(request.auth, organisation), login=login)
    return Status(204, None)
