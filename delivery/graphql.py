"""The GraphQL door of the send API at /graphql (strawberry-graphql-django), as seed 002 shows
it: `mutation { sendEmail(from: …, to: […], subject: …, textBody: …, htmlBody: …,
idempotencyKey: …) { id status suppressed } }`, and `query { message(id: …) { id status } }`.

Same service as POST /api/v1/messages (delivery.services.message_send), same input checks
(the REST schema validates the arguments), same tokens: `Authorization: Bearer mh_…` of an
organisation, read-write to send. Only tokens are accepted (no session cookie), so the view
needs no CSRF token. Errors are GraphQL errors whose `extensions` carry the REST error's
`code` and HTTP-like `status`.
"""

from typing import Annotated

import strawberry
from django.views.decorators.csrf import csrf_exempt
from graphql import GraphQLError
from pydantic import ValidationError
from strawberry.django.views import GraphQLView

from delivery.api import MessageIn, draft_from, message_out
from delivery.selectors import message_get
from delivery.services import message_send
from mailhost import http
from mailhost.errors import DomainError
from tenants.access import Actor
from tenants.api_common import organisation_for
from tenants.idempotency import check_key
from tenants.services import api_token_admit, api_token_authenticate


def _actor(info: strawberry.Info) -> Actor:
    request = info.context.request
    scheme, _, raw = request.headers.get("Authorization", "").partition(" ")
    token = api_token_authenticate(raw.strip()) if scheme.lower() == "bearer" else None
    if token is None:
        raise GraphQLError("Authenticate with 'Authorization: Bearer <token>'.",
                           extensions={"code": "unauthenticated", "status": 401})
    try:
        api_token_admit(token, staff_api=False)
    except DomainError as exc:
        raise _error(exc) from exc
    return Actor(token=token, ip=http.client_ip(request))


def _error(exc: DomainError) -> GraphQLError:
    extensions = {"code": exc.code, "status": exc.status}
    if exc.field:
        extensions["field"] = exc.field
    return GraphQLError(exc.detail, extensions=extensions)


@strawberry.type
class Recipient:
    address: str
    kind: str
    status: str


@strawberry.type
class Email:
    id: str
    status: str
    recipients: list[Recipient]
    suppressed: list[str]
    message_id: str


def _email(message) -> Email:
    out = message_out(message)
    return Email(id=out["id"], status=out["status"], suppressed=out["suppressed"],
                 message_id=out["message_id"],
                 recipients=[Recipient(address=r.address, kind=r.kind, status=r.status)
                             for r in out["recipients"]])


@strawberry.type
class Query:
    @strawberry.field(description="A message sent by your organisation.")
    def message(self, info: strawberry.Info, id: str) -> Email:  # noqa: A002 (GraphQL's name)
        actor = _actor(info)
        try:
            return _email(message_get(actor, id))
        except DomainError as exc:
            raise _error(exc) from exc


@strawberry.type
class Mutation:
    @strawberry.mutation(name="sendEmail", description="Send one message; see POST "
                         "/api/v1/messages for every rule.")
    def send_email(  # noqa: PLR0913 (GraphQL arguments)
        self, info: strawberry.Info,
        from_: Annotated[str, strawberry.argument(name="from")],
        to: list[str], subject: str = "", text_body: str | None = None,
        html_body: str | None = None, cc: list[str] | None = None,
        bcc: list[str] | None = None, reply_to: list[str] | None = None,
        tags: list[str] | None = None, idempotency_key: str | None = None,
        organisation: str | None = None,
    ) -> Email:
        actor = _actor(info)
        try:
            payload = MessageIn.model_validate({
                "from": from_, "to": to, "cc": cc or [], "bcc": bcc or [],
                "reply_to": reply_to or [], "subject": subject, "text": text_body,
                "html": html_body, "tags": tags or [],
            })
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(part) for part in first.get("loc", ()))
            raise GraphQLError(f"{field}: {first.get('msg')}",
                               extensions={"code": "invalid", "status": 422,
                                           "field": field}) from exc
        try:
            if idempotency_key:
                check_key(idempotency_key)
            sent = message_send(actor=actor, organisation=organisation_for(actor, organisation),
                                draft=draft_from(payload), idempotency_key=idempotency_key or "")
            return _email(message_get(actor, sent.message.id))
        except DomainError as exc:
            raise _error(exc) from exc


schema = strawberry.Schema(query=Query, mutation=Mutation)
# Tokens only (see above): no CSRF; no GraphiQL page (its inline scripts break the CSP).
graphql_view = csrf_exempt(GraphQLView.as_view(schema=schema, graphql_ide=None))
