"""API routes for a domain's DNS posture: records and verdicts, DKIM rotation, DMARC stage,
BIMI logo, MTA-STS policy, publishing. Thin calls into identity's services and selectors."""

import datetime as dt
from typing import Literal

from django.conf import settings
from django.http import HttpResponse
from ninja import Field, File, Query, Router, Schema
from ninja.files import UploadedFile
from ninja.responses import Status
from pydantic import StrictBool, StrictInt

from identity import inbound as inbound_services
from identity.models import DkimKey, DnsCheckHistory
from identity.mtasts import MAX_AGE_LIMIT, POLICY_HOST_PREFIX, POLICY_PATH
from identity.selectors import (
    DnsOverview,
    bimi_logo_url,
    check_history,
    dns_overview,
    domain_zone,
)
from identity.services import (
    bimi_remove,
    bimi_upload,
    dkim_retire,
    dkim_rotate_start,
    dkim_rotation_advance,
    dmarc_set_stage,
    dns_check_run,
    dns_publish,
    mtasts_set,
    posture_update,
)
from mailboxes.selectors import domain_get, domain_get_for_write
from tenants.api_common import READ_ERRORS, WRITE_ERRORS, ErrorOut, organisation_for

router = Router(tags=["dns"])

Status3 = Literal["ok", "wrong", "unknown"]


class RecordOut(Schema):
    key: str = Field(description="Stable id of the expected record: mx, spf, dkim:<selector>…")
    name: str
    type: str
    value: str = Field(description="Expected value (TXT unquoted and unsplit).")
    purpose: str
    status: Status3 | None = Field(description="null until first checked.")
    detail: str = Field(description="What the check found, in words.")
    found: list[str]
    checked_at: dt.datetime | None


class DkimKeyOut(Schema):
    selector: str
    algorithm: str
    state: Literal["pending", "published", "active", "retiring", "retired"]
    dns_name: str
    created_at: dt.datetime
    published_at: dt.datetime | None
    activated_at: dt.datetime | None
    retiring_at: dt.datetime | None
    retired_at: dt.datetime | None


class DmarcStageOut(Schema):
    policy: Literal["none", "quarantine", "reject"]
    pct: int


class DmarcOut(Schema):
    policy: Literal["none", "quarantine", "reject"]
    pct: int
    rua: list[str]
    ruf: list[str]
    adkim: Literal["r", "s"]
    aspf: Literal["r", "s"]
    next_step: DmarcStageOut | None = Field(description="Recommended next stage; null at reject.")
    blocked_by: list[str] = Field(description="Why tightening is refused now (without force).")


class MtaStsOut(Schema):
    mode: Literal["testing", "enforce", "none"]
    mx: list[str]
    max_age: int
    id: str
    policy_url: str


class BimiOut(Schema):
    logo_url: str | None
    sha256: str | None
    uploaded_at: dt.datetime | None
    published: bool = Field(description="default._bimi is published only while DMARC enforces.")


class PublishingOut(Schema):
    auto_publish: bool
    server: str
    port: int
    zone: str
    tsig_key_name: str
    tsig_algorithm: str
    tsig_secret_set: bool
    last_published_at: dt.datetime | None
    last_publish_error: str


class StaleRecordOut(Schema):
    name: str
    type: str
    reason: str


class DnsOut(Schema):
    domain: str
    verified: bool = Field(
        description="Ownership proven; until then the `verification` record must be published."
    )
    records: list[RecordOut]
    remove: list[StaleRecordOut] = Field(description="Delete these if they are published.")
    dkim_keys: list[DkimKeyOut]
    dmarc: DmarcOut
    mta_sts: MtaStsOut
    tls_rpt_rua: list[str]
    bimi: BimiOut
    publishing: PublishingOut
    last_checked_at: dt.datetime | None


def _dns_out(view: DnsOverview) -> dict:
    posture, name = view.posture, view.domain.name
    return {
        "domain": name,
        "verified": view.domain.is_verified,
        "records": [r.__dict__ for r in view.records],
        "remove": [r.__dict__ for r in view.remove],
        "dkim_keys": [_key_out(k, name) for k in view.keys],
        "dmarc": {
            "policy": posture.dmarc_policy,
            "pct": posture.dmarc_pct,
            "rua": posture.dmarc_rua,
            "ruf": posture.dmarc_ruf,
            "adkim": posture.dmarc_adkim,
            "aspf": posture.dmarc_aspf,
            "next_step": dict(zip(("policy", "pct"), view.dmarc_next, strict=True))
            if view.dmarc_next else None,
            "blocked_by": view.dmarc_blockers,
        },
        "mta_sts": {
            "mode": posture.mtasts_mode,
            "mx": posture.mtasts_mx or [settings.MAILHOST_HOSTNAME],
            "max_age": posture.mtasts_max_age,
            "id": view.mtasts_id,
            "policy_url": f"https://{POLICY_HOST_PREFIX}{name}{POLICY_PATH}",
        },
        "tls_rpt_rua": posture.tlsrpt_rua,
        "bimi": {
            "logo_url": bimi_logo_url(name) if posture.bimi_sha256 else None,
            "sha256": posture.bimi_sha256 or None,
            "uploaded_at": posture.bimi_uploaded_at,
            "published": view.bimi_published,
        },
        "publishing": {
            "auto_publish": posture.auto_publish,
            "server": posture.publish_server,
            "port": posture.publish_port,
            "zone": posture.publish_zone or name,
            "tsig_key_name": posture.tsig_key_name,
            "tsig_algorithm": posture.tsig_algorithm,
            "tsig_secret_set": bool(posture.tsig_secret_encrypted),
            "last_published_at": posture.last_published_at,
            "last_publish_error": posture.last_publish_error,
        },
        "last_checked_at": posture.last_checked_at,
    }


def _key_out(key: DkimKey, domain_name: str) -> dict:
    return {
        "selector": key.selector,
        "algorithm": key.algorithm,
        "state": key.state,
        "dns_name": f"{key.selector}._domainkey.{domain_name}",
        "created_at": key.created_at,
        "published_at": key.published_at,
        "activated_at": key.activated_at,
        "retiring_at": key.retiring_at,
        "retired_at": key.retired_at,
    }


READ = {200: DnsOut, READ_ERRORS: ErrorOut}
WRITE = {200: DnsOut, WRITE_ERRORS: ErrorOut}


@router.get("/domains/{name}/dns", response=READ, summary="Records to publish, with verdicts")
def dns_get(request, name: str):
    """Every record the domain should publish, its purpose, and the latest live check of it."""
    return _dns_out(dns_overview(request.auth, name))


ZONE_TEXT = {
    "responses": {
        "200": {
            "description": "The records as a BIND zone-file fragment",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        }
    }
}


@router.get("/domains/{name}/dns/zone", response={READ_ERRORS: ErrorOut},
            summary="The records as a BIND zone-file fragment", openapi_extra=ZONE_TEXT)
def dns_zone(request, name: str):
    text = domain_zone(request.auth, name)
    return HttpResponse(text, content_type="text/plain; charset=utf-8")


@router.post("/domains/{name}/dns/check", response=WRITE, summary="Check the records now")
def dns_check(request, name: str):
    """Query DNS now (bounded by the resolver timeouts) and store the verdicts. A write: it
    records history, may take due DKIM rotation steps and mails admins about changes."""
    domain = domain_get_for_write(request.auth, name)
    dns_check_run(actor=request.auth, domain=domain)
    return _dns_out(dns_overview(request.auth, name))


class HistoryOut(Schema):
    key: str
    name: str
    type: str
    status: Status3
    previous_status: str | None
    detail: str
    found: list[str]
    checked_at: dt.datetime


class HistoryQuery(Schema):
    key: str | None = Field(None, max_length=100)
    limit: int = Field(100, ge=1, le=500)
    offset: int = Field(0, ge=0)


class HistoryPage(Schema):
    count: int
    items: list[HistoryOut]


def _history_out(entry: DnsCheckHistory) -> dict:
    return {
        "key": entry.key, "name": entry.name, "type": entry.rtype, "status": entry.status,
        "previous_status": entry.previous_status or None, "detail": entry.detail,
        "found": entry.found, "checked_at": entry.checked_at,
    }


@router.get("/domains/{name}/dns/history", response={200: HistoryPage, READ_ERRORS: ErrorOut},
            summary="Verdict changes, newest first")
def dns_history(request, name: str, query: Query[HistoryQuery]):
    entries = check_history(request.auth, name, key=query.key)
    page = entries[query.offset : query.offset + query.limit]
    return {"count": entries.count(), "items": [_history_out(e) for e in page]}


class DnsSettingsIn(Schema):
    dmarc_rua: list[str] | None = Field(None, max_length=5, description="Report addresses.")
    dmarc_ruf: list[str] | None = Field(None, max_length=5)
    dmarc_adkim: Literal["r", "s"] | None = None
    dmarc_aspf: Literal["r", "s"] | None = None
    tls_rpt_rua: list[str] | None = Field(None, max_length=5, description="mailto: or https:")
    dkim_ed25519: StrictBool | None = Field(None, description="Sign with Ed25519 alongside RSA.")
    auto_publish: StrictBool | None = None
    publish_server: str | None = Field(
        None, max_length=253,
        description="The primary's public IP address or host name (internal networks only if "
        "staff allowed them).",
    )
    publish_port: StrictInt | None = Field(None, ge=1, le=65535)
    publish_zone: str | None = Field(None, max_length=253, description="Empty: the domain.")
    tsig_key_name: str | None = Field(None, max_length=253)
    tsig_algorithm: Literal["hmac-sha256", "hmac-sha512"] | None = None
    tsig_secret: str | None = Field(None, max_length=200, description="Base64; write-only.")


@router.patch("/domains/{name}/dns/settings", response=WRITE,
              summary="Report addresses, alignment, Ed25519, automatic publishing")
def dns_settings(request, name: str, payload: DnsSettingsIn):
    domain = domain_get_for_write(request.auth, name)
    changes = payload.model_dump(exclude_unset=True)
    changes["tlsrpt_rua"] = changes.pop("tls_rpt_rua", None)
    posture_update(actor=request.auth, domain=domain, **changes)
    return _dns_out(dns_overview(request.auth, name))


class PublishOut(Schema):
    changed: list[str]


@router.post("/domains/{name}/dns/publish",
             response={200: PublishOut, WRITE_ERRORS | {502}: ErrorOut},
             summary="Publish the records now by RFC 2136")
def dns_publish_now(request, name: str):
    """422 `dns_publish_target_refused`: the server is not an address the portal may connect
    to (nothing was sent). 502 `dns_publish_failed`: the server refused the update, or gave
    no usable DNS answer in time (one message for every such case)."""
    domain = domain_get_for_write(request.auth, name)
    return {"changed": dns_publish(actor=request.auth, domain=domain)}


class RotateOut(Schema):
    keys: list[DkimKeyOut]


@router.post("/domains/{name}/dkim/rotate",
             response={201: RotateOut, WRITE_ERRORS: ErrorOut},
             summary="Start a DKIM key rotation")
def dkim_rotate(request, name: str):
    """Generate the next key (pending). It is published, seen in DNS, then signs; the old key
    stays published for the grace period, then is retired. 409 while a rotation is running."""
    domain = domain_get_for_write(request.auth, name)
    keys = dkim_rotate_start(actor=request.auth, domain=domain)
    return Status(201, {"keys": [_key_out(k, domain.name) for k in keys]})


class AdvanceIn(Schema):
    force: StrictBool = Field(False, description="Switch without waiting for DNS evidence.")


class AdvanceOut(Schema):
    steps: list[str]
    keys: list[DkimKeyOut]


@router.post("/domains/{name}/dkim/advance",
             response={200: AdvanceOut, WRITE_ERRORS: ErrorOut},
             summary="Take the rotation steps that are due")
def dkim_advance(request, name: str, payload: AdvanceIn):
    domain = domain_get_for_write(request.auth, name)
    steps = dkim_rotation_advance(actor=request.auth, domain=domain, force=payload.force)
    keys = domain.dkim_keys.order_by("-created_at", "-id")
    return {"steps": steps, "keys": [_key_out(k, domain.name) for k in keys]}


@router.post("/domains/{name}/dkim/{selector}/retire",
             response={200: DkimKeyOut, WRITE_ERRORS: ErrorOut},
             summary="Retire a key now (not the signing one)")
def dkim_retire_now(request, name: str, selector: str):
    domain = domain_get_for_write(request.auth, name)
    return _key_out(dkim_retire(actor=request.auth, domain=domain, selector=selector), domain.name)


class DmarcIn(Schema):
    policy: Literal["none", "quarantine", "reject"]
    pct: StrictInt = Field(100, ge=1, le=100)
    force: StrictBool = Field(
        False, description="Tighten even though SPF or DKIM checks fail (audited)."
    )


@router.put("/domains/{name}/dmarc", response=WRITE, summary="Set the DMARC stage")
def dmarc_put(request, name: str, payload: DmarcIn):
    """Relaxing is always allowed; tightening is refused (409 dns_checks_failing) while the SPF
    or DKIM checks are not ok, unless forced."""
    domain = domain_get_for_write(request.auth, name)
    dmarc_set_stage(
        actor=request.auth, domain=domain, policy=payload.policy, pct=payload.pct,
        force=payload.force,
    )
    return _dns_out(dns_overview(request.auth, name))


class MtaStsIn(Schema):
    mode: Literal["testing", "enforce", "none"] | None = None
    mx: list[str] | None = Field(None, max_length=10, description="Empty list: the mail host.")
    max_age: StrictInt | None = Field(None, ge=1, le=MAX_AGE_LIMIT)


@router.put("/domains/{name}/mta-sts", response=WRITE, summary="Set the MTA-STS policy")
def mtasts_put(request, name: str, payload: MtaStsIn):
    domain = domain_get_for_write(request.auth, name)
    mtasts_set(actor=request.auth, domain=domain, **payload.model_dump(exclude_unset=True))
    return _dns_out(dns_overview(request.auth, name))


@router.post("/domains/{name}/bimi", response=WRITE, summary="Upload the BIMI logo (SVG Tiny PS)")
def bimi_post(request, name: str, logo: File[UploadedFile]):
    """multipart/form-data with the SVG in `logo`. 422 `svg_rejected` lists every problem."""
    domain = domain_get_for_write(request.auth, name)
    data = logo.read(settings.MAILHOST_BIMI_MAX_BYTES + 1)
    bimi_upload(actor=request.auth, domain=domain, data=data)
    return _dns_out(dns_overview(request.auth, name))


@router.delete("/domains/{name}/bimi", response={204: None, WRITE_ERRORS: ErrorOut},
               summary="Remove the BIMI logo")
def bimi_delete(request, name: str):
    domain = domain_get_for_write(request.auth, name)
    bimi_remove(actor=request.auth, domain=domain)
    return Status(204, None)


# --- inbound policy and mail flow (services: identity/inbound.py) ----------------------------

class SenderRuleOut(Schema):
    id: int
    kind: Literal["allow", "block"]
    sender: str = Field(description="user@example.com or @example.com")
    mailbox: str = Field(description="Empty: the whole domain.")
    created_at: dt.datetime


class FlowDayOut(Schema):
    day: dt.date
    total: int
    delivered: int
    junked: int
    spam_rejected: int
    dmarc_rejected: int
    policy_rejected: int
    greylisted: int
    deferred: int


class InboundOut(Schema):
    domain: str
    require_spf: bool
    require_dkim: bool
    require_dmarc: bool
    greylisting: bool
    junk_score: float | None = Field(description="null: the node's default (junk_default).")
    reject_score: float | None = Field(description="null: the node's default (reject_default).")
    junk_default: float
    reject_default: float
    senders: list[SenderRuleOut]
    flow: list[FlowDayOut] = Field(description="The last 7 days, oldest first.")


class InboundIn(Schema):
    require_spf: StrictBool | None = None
    require_dkim: StrictBool | None = None
    require_dmarc: StrictBool | None = None
    greylisting: StrictBool | None = None
    junk_score: float | None = Field(None, description="null resets to the default.")
    reject_score: float | None = Field(None, description="null resets to the default.")


class SenderRuleIn(Schema):
    kind: Literal["allow", "block"]
    sender: str = Field(max_length=254)
    mailbox: str = Field("", max_length=254, description="One of the domain's mailboxes.")


class FlowOut(Schema):
    days: list[FlowDayOut]
    greylisting_fails_open: bool = Field(description="A node's circuit breaker is open.")
    reasons: list[str]


class FlowQuery(Schema):
    organisation: str | None = None
    domain: str | None = None


def _flow_out(days) -> list[dict]:
    return [{"day": d.day, "total": d.total, **d.counts} for d in days]


def _inbound_out(domain) -> dict:
    policy = inbound_services.inbound_policy_of(domain)
    return {
        "domain": domain.name,
        **inbound_services.policy_state(policy),
        "junk_default": float(settings.MAILHOST_INBOUND_JUNK_SCORE),
        "reject_default": float(settings.MAILHOST_INBOUND_REJECT_SCORE),
        "senders": inbound_services.sender_rules_of(domain),
        "flow": _flow_out(inbound_services.flow_by_day(
            [domain.name] if domain.verified_at else [])),
    }


@router.get("/domains/{name}/inbound", response={200: InboundOut, READ_ERRORS: ErrorOut},
            tags=["inbound"], summary="Inbound policy, sender lists and mail flow")
def inbound_get(request, name: str):
    return _inbound_out(domain_get(request.auth, name))


@router.patch("/domains/{name}/inbound", response={200: InboundOut, WRITE_ERRORS: ErrorOut},
              tags=["inbound"], summary="Change the inbound policy")
def inbound_patch(request, name: str, payload: InboundIn):
    domain = domain_get_for_write(request.auth, name)
    inbound_services.inbound_policy_update(actor=request.auth, domain=domain,
                                           **payload.model_dump(exclude_unset=True))
    return _inbound_out(domain)


@router.post("/domains/{name}/inbound/senders",
             response={201: SenderRuleOut, WRITE_ERRORS: ErrorOut}, tags=["inbound"],
             summary="Allow or block a sender")
def inbound_sender_add(request, name: str, payload: SenderRuleIn):
    domain = domain_get_for_write(request.auth, name)
    rule = inbound_services.inbound_rule_add(actor=request.auth, domain=domain, kind=payload.kind,
                                             sender=payload.sender, mailbox=payload.mailbox)
    return Status(201, rule)


@router.delete("/domains/{name}/inbound/senders/{rule_id}",
               response={204: None, WRITE_ERRORS: ErrorOut}, tags=["inbound"],
               summary="Remove a sender from the lists")
def inbound_sender_remove(request, name: str, rule_id: int):
    domain = domain_get_for_write(request.auth, name)
    inbound_services.inbound_rule_remove(actor=request.auth, domain=domain, rule_id=rule_id)
    return Status(204, None)


@router.get("/inbound/flow", response={200: FlowOut, READ_ERRORS: ErrorOut}, tags=["inbound"],
            summary="Mail flow of the last 7 days")
def inbound_flow(request, query: Query[FlowQuery]):
    organisation = organisation_for(request.auth, query.organisation) if (
        query.organisation or not request.auth.is_global) else None
    names = inbound_services.visible_flow_domains(request.auth, organisation=organisation,
                                                  name=query.domain)
    open_nodes = inbound_services.breaker_status(request.auth, organisation=organisation)
    return {
        "days": _flow_out(inbound_services.flow_by_day(names)),
        "greylisting_fails_open": bool(open_nodes),
        "reasons": [reason for node in open_nodes for reason in node.reasons],
    }
