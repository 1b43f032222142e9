"""Relays and the queue in the API: thin calls into routing's services and selectors.

The staff API for outbound TLS: per-domain policies and the TLS failures the nodes recorded.

Install-wide (a policy applies to every sender on the node; a TLS-RPT report is the sending
service's): mounted on the staff door (/api/v1/staff/), never on an organisation's token.
"""

import datetime as dt
from typing import Literal

from ninja import Field, Query, Router, Schema
from ninja.responses import Status

from mailboxes.selectors import domain_get
from mailhost.backend.tls_policy import POLICY_LEVELS
from routing.models import TlsMode
from routing.queue import Queued, queue_list, queue_list_all
from routing.selectors import (
    relay_list,
    tls_failure_list,
    tls_failure_summary,
    tls_policy_get,
    tls_policy_list,
)
from routing.services import (
    RelayInput,
    queue_act,
    relay_delete,
    relay_set,
    relay_test,
    tls_policy_delete,
    tls_policy_set,
)
from tenants.api_common import (
    READ_ERRORS,
    WRITE_ERRORS,
    Address,
    ErrorOut,
    Slug,
    Text,
    organisation_for,
)

router = Router(tags=["relays"])
staff_router = Router(tags=["staff"])

TlsModeIn = Literal[tuple(TlsMode.values)]  # type: ignore[valid-type]
QueueName = Literal["deferred", "hold", "active", "incoming", "maildrop"]
Action = Literal["retry", "hold", "release", "delete"]


class RelayIn(Schema):
    host: Text(253, min_length=1) = Field(description="The relay's host name or IP address "
                                          "(public addresses only).")
    port: int = Field(587, ge=1, le=65535)
    tls_mode: TlsModeIn = Field("required", description="required: TLS or no delivery; "
                                "verified: and a certificate valid for the host; "
                                "opportunistic: TLS when offered.")
    username: Text(255) = ""
    password: Text(255) | None = Field(None, description="Write-only. Left out: keep the "
                                       "stored one.")
    spf_include: Text(253) = Field("", description="The relay's SPF include, e.g. "
                                   "spf.relay.example: added to the generated SPF record.")


class RelayOut(Schema):
    id: int
    domain: str | None = Field(description="The domain it carries; null: every domain of the "
                               "organisation without a relay of its own.")
    host: str
    port: int
    tls_mode: str
    username: str
    password_set: bool
    spf_include: str
    updated_at: dt.datetime

    @staticmethod
    def resolve_domain(obj) -> str | None:
        return obj.domain.name if obj.domain_id else None

    @staticmethod
    def resolve_password_set(obj) -> bool:
        return bool(obj.password_encrypted)


class RelayTestIn(Schema):
    to: Address = Field(description="Where the test message goes.")


class RelayTestOut(Schema):
    ok: bool
    stage: Literal["connect", "starttls", "auth", "mail", "rcpt", "data", "done"]
    reply: str = Field(description="The relay's last reply (or why the connection failed).")


def _input(payload: RelayIn) -> RelayInput:
    return RelayInput(host=payload.host, port=payload.port, tls_mode=payload.tls_mode,
                      username=payload.username, password=payload.password,
                      spf_include=payload.spf_include)


@router.get("/relays", response={200: list[RelayOut], READ_ERRORS: ErrorOut},
            summary="The organisation's relays (smarthosts)")
def relays_list(request, organisation: Slug | None = None):
    return list(relay_list(request.auth, organisation_for(request.auth, organisation)))


@router.put("/relays/organisation", response={201: RelayOut, 200: RelayOut,
                                              WRITE_ERRORS: ErrorOut},
            summary="Set the organisation's relay (for domains without their own)")
def relay_put_organisation(request, payload: RelayIn, organisation: Slug | None = None):
    relay, created = relay_set(actor=request.auth,
                               organisation=organisation_for(request.auth, organisation),
                               data=_input(payload))
    return Status(201 if created else 200, relay)


@router.put("/domains/{name}/relay", response={201: RelayOut, 200: RelayOut,
                                               WRITE_ERRORS: ErrorOut},
            tags=["domains"], summary="Set the domain's relay")
def relay_put_domain(request, name: str, payload: RelayIn, organisation: Slug | None = None):
    org = organisation_for(request.auth, organisation) if organisation else None
    domain = domain_get(request.auth, name, organisation=org)
    relay, created = relay_set(actor=request.auth, organisation=domain.organisation,
                               domain=domain, data=_input(payload))
    return Status(201 if created else 200, relay)


@router.delete("/relays/{relay_id}", response={204: None, WRITE_ERRORS: ErrorOut},
               summary="Remove a relay")
def relay_remove(request, relay_id: int, organisation: Slug | None = None):
    relay_delete(actor=request.auth, organisation=organisation_for(request.auth, organisation),
                 relay_id=relay_id)
    return Status(204, None)


@router.post("/relays/{relay_id}/test", response={200: RelayTestOut, WRITE_ERRORS: ErrorOut},
             summary="Send a test message through a relay; the relay's reply")
def relay_send_test(request, relay_id: int, payload: RelayTestIn,
                    organisation: Slug | None = None):
    return relay_test(actor=request.auth,
                      organisation=organisation_for(request.auth, organisation),
                      relay_id=relay_id, to=payload.to)


# --- the queue ---------------------------------------------------------------------------------


class QueuedRecipientOut(Schema):
    address: str
    reason: str = Field(description="Why it waits: the last reply or error; empty if none yet.")


class QueuedOut(Schema):
    queue_id: str
    node: str
    queue: QueueName
    sender: str
    recipients: list[QueuedRecipientOut]
    reason: str
    size: int
    arrived_at: dt.datetime
    age_seconds: int
    next_attempt_at: dt.datetime | None = Field(description="Deferred messages: the next try.")


def _out(item: Queued, now: dt.datetime) -> dict:
    entry = item.entry
    arrived = dt.datetime.fromtimestamp(entry.arrival, dt.UTC)
    return {
        "queue_id": entry.queue_id, "node": item.node, "queue": entry.queue,
        "sender": entry.sender, "reason": entry.reason, "size": entry.size,
        "recipients": [{"address": a, "reason": r} for a, r in entry.recipients],
        "arrived_at": arrived, "age_seconds": max(0, int((now - arrived).total_seconds())),
        "next_attempt_at": dt.datetime.fromtimestamp(entry.next_attempt, dt.UTC)
        if entry.next_attempt else None,
    }


class QueueQuery(Schema):
    organisation: Slug | None = None
    domain: Text(253) | None = Field(None, description="Only this domain's messages.")
    queue: QueueName | None = None


@router.get("/queue", response={200: list[QueuedOut], READ_ERRORS: ErrorOut}, tags=["queue"],
            summary="Messages of the organisation's domains waiting in the mail queue")
def queue_get(request, query: Query[QueueQuery]):
    organisation = organisation_for(request.auth, query.organisation)
    domain = domain_get(request.auth, query.domain, organisation=organisation) \
        if query.domain else None
    now = dt.datetime.now(dt.UTC)
    return [_out(item, now) for item in queue_list(request.auth, organisation, domain=domain,
                                                   queue=query.queue)]


@router.post("/queue/{queue_id}/{action}", response={200: QueuedOut, WRITE_ERRORS: ErrorOut},
             tags=["queue"], summary="Retry now, hold, release or delete a queued message")
def queue_post(request, queue_id: str, action: Action, organisation: Slug | None = None):
    item = queue_act(actor=request.auth,
                     organisation=organisation_for(request.auth, organisation),
                     queue_id=queue_id, action=action)
    return _out(item, dt.datetime.now(dt.UTC))


class StaffQueueQuery(Schema):
    queue: QueueName | None = None


@staff_router.get("/queue", response={200: list[QueuedOut], READ_ERRORS | {403}: ErrorOut},
                  summary="Every message in every node's queue")
def staff_queue_get(request, query: Query[StaffQueueQuery]):
    now = dt.datetime.now(dt.UTC)
    return [_out(item, now) for item in queue_list_all(request.auth, queue=query.queue)]


@staff_router.post("/queue/{queue_id}/{action}",
                   response={200: QueuedOut, WRITE_ERRORS: ErrorOut},
                   summary="Retry now, hold, release or delete any queued message")
def staff_queue_post(request, queue_id: str, action: Action):
    item = queue_act(actor=request.auth, organisation=None, queue_id=queue_id, action=action)
    return _out(item, dt.datetime.now(dt.UTC))


tls_router = Router(tags=["staff"])

Level = Literal[POLICY_LEVELS]  # type: ignore[valid-type]
DomainName = Text(253, min_length=1)


class TlsPolicyIn(Schema):
    domain: DomainName
    level: Level
    note: Text(200) = ""


class TlsPolicyOut(Schema):
    domain: str
    level: str
    note: str
    created_at: dt.datetime
    updated_at: dt.datetime


class TlsPolicyListOut(Schema):
    count: int
    items: list[TlsPolicyOut]


class DomainTlsOut(Schema):
    domain: str
    failures: int
    last_at: dt.datetime
    results: dict[str, int]
    policy_types: list[str]
    successes: int


class TlsFailureOut(Schema):
    at: dt.datetime
    domain: str
    mx_host: str
    mx_ip: str
    policy_type: str
    policy_strings: list[str]
    result_type: str
    detail: str
    node_name: str


class TlsFailureListOut(Schema):
    count: int
    domains: list[DomainTlsOut]
    items: list[TlsFailureOut]


class FailureQuery(Schema):
    domain: Text(253) | None = None


@tls_router.get("/tls-policies", response={200: TlsPolicyListOut, READ_ERRORS | {403}: ErrorOut},
            summary="Outbound TLS policies per recipient domain")
def tls_policies_list(request):
    items = tls_policy_list(request.auth)
    return {"count": len(items), "items": items}


@tls_router.post("/tls-policies", response={200: TlsPolicyOut, 201: TlsPolicyOut,
                                        WRITE_ERRORS: ErrorOut},
             summary="Set the outbound TLS policy for a recipient domain")
def tls_policies_set(request, payload: TlsPolicyIn):
    """Create (201) or change (200) what the nodes demand when sending to the domain: `secure`
    (a certificate that verifies for the MX name), `dane-only`, `dane`, `encrypt` or `may`.
    It applies above the domain's MTA-STS policy and the install-wide default."""
    policy, created = tls_policy_set(actor=request.auth, domain=payload.domain,
                                     level=payload.level, note=payload.note)
    return Status(201 if created else 200, policy)


@tls_router.get("/tls-policies/{domain}",
                response={200: TlsPolicyOut, READ_ERRORS | {403}: ErrorOut},
                summary="One recipient domain's outbound TLS policy")
def tls_policies_get(request, domain: DomainName):
    return tls_policy_get(request.auth, domain)


@tls_router.delete("/tls-policies/{domain}", response={200: TlsPolicyOut, WRITE_ERRORS: ErrorOut},
               summary="Remove a recipient domain's outbound TLS policy")
def tls_policies_delete(request, domain: DomainName):
    return tls_policy_delete(actor=request.auth, domain=domain)


@tls_router.get("/tls-failures", response={200: TlsFailureListOut, READ_ERRORS | {403}: ErrorOut},
            summary="TLS failures toward recipient domains (RFC 8460 result types)")
def tls_failures(request, query: Query[FailureQuery]):
    """Per domain (the last 30 days) and the latest failures, of one domain or all."""
    items = tls_failure_list(request.auth, domain=query.domain)
    return {"count": len(items), "domains": tls_failure_summary(request.auth), "items": items}
