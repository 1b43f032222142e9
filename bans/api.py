"""API routes for login bans: list, see one, lift one (who sees what: bans.selectors)."""

import datetime as dt

from ninja import Router, Schema

from bans.selectors import ban_get, ban_list
from bans.services import ban_lift
from tenants.api_common import READ_ERRORS, WRITE_ERRORS, ErrorOut, Text

router = Router()

IP = Text(64, min_length=1)


class BanOut(Schema):
    ip: str
    since: dt.datetime
    until: dt.datetime
    failures: int
    services: list[str]
    accounts: list[str]


class BanListOut(Schema):
    count: int
    items: list[BanOut]


@router.get("/bans", response={200: BanListOut, READ_ERRORS: ErrorOut}, tags=["bans"])
def bans_list(request):
    """Active login bans: all for staff; for an organisation, those whose failed logins
    targeted its own addresses (only those addresses are shown)."""
    items = ban_list(request.auth)
    return {"count": len(items), "items": items}


@router.get("/bans/{ip}", response={200: BanOut, READ_ERRORS: ErrorOut}, tags=["bans"])
def bans_get(request, ip: IP):
    return ban_get(request.auth, ip)


@router.delete("/bans/{ip}", response={200: BanOut, WRITE_ERRORS: ErrorOut}, tags=["bans"])
def bans_lift(request, ip: IP):
    """Lift the ban now (audited): the address may log in again on every service."""
    return ban_lift(actor=request.auth, ip=ip)
