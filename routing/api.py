"""The staff API for outbound TLS: per-domain policies and the TLS failures the nodes recorded.

Install-wide (a policy applies to every sender on the node; a TLS-RPT report is the sending
service's): mounted on the staff door (/api/v1/staff/), never on an organisation's token.
"""

import datetime as dt
from typing import Literal

from ninja import Query, Router, Schema
from ninja.responses import Status

from mailhost.backend.tls_policy import POLICY_LEVELS
from routing.selectors import tls_failure_list, tls_failure_summary, tls_policy_get, tls_policy_list
from routing.services import tls_policy_delete, tls_policy_set
from tenants.api_common import READ_ERRORS, WRITE_ERRORS, ErrorOut, Text

router = Router(tags=["staff"])

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


@router.get("/tls-policies", response={200: TlsPolicyListOut, READ_ERRORS | {403}: ErrorOut},
            summary="Outbound TLS policies per recipient domain")
def tls_policies_list(request):
    items = tls_policy_list(request.auth)
    return {"count": len(items), "items": items}


@router.post("/tls-policies", response={200: TlsPolicyOut, 201: TlsPolicyOut,
                                        WRITE_ERRORS: ErrorOut},
             summary="Set the outbound TLS policy for a recipient domain")
def tls_policies_set(request, payload: TlsPolicyIn):
    """Create (201) or change (200) what the nodes demand when sending to the domain: `secure`
    (a certificate that verifies for the MX name), `dane-only`, `dane`, `encrypt` or `may`.
    It applies above the domain's MTA-STS policy and the install-wide default."""
    policy, created = tls_policy_set(actor=request.auth, domain=payload.domain,
                                     level=payload.level, note=payload.note)
    return Status(201 if created else 200, policy)


@router.get("/tls-policies/{domain}", response={200: TlsPolicyOut, READ_ERRORS | {403}: ErrorOut},
            summary="One recipient domain's outbound TLS policy")
def tls_policies_get(request, domain: DomainName):
    return tls_policy_get(request.auth, domain)


@router.delete("/tls-policies/{domain}", response={200: TlsPolicyOut, WRITE_ERRORS: ErrorOut},
               summary="Remove a recipient domain's outbound TLS policy")
def tls_policies_delete(request, domain: DomainName):
    return tls_policy_delete(actor=request.auth, domain=domain)


@router.get("/tls-failures", response={200: TlsFailureListOut, READ_ERRORS | {403}: ErrorOut},
            summary="TLS failures toward recipient domains (RFC 8460 result types)")
def tls_failures(request, query: Query[FailureQuery]):
    """Per domain (the last 30 days) and the latest failures, of one domain or all."""
    items = tls_failure_list(request.auth, domain=query.domain)
    return {"count": len(items), "domains": tls_failure_summary(request.auth), "items": items}
