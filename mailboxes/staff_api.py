"""The staff API's domain moves between mail nodes (mounted under /api/v1/staff/ by the staff
door in mailhost.api: a staff token or a staff user's session only)."""

import datetime as dt

from ninja import Field, Router, Schema
from ninja.responses import Status

from mailboxes.selectors import domain_get
from mailboxes.services import moves
from nodes.models import DomainMove
from tenants.api_common import READ_ERRORS, WRITE_ERRORS, ErrorOut, Input

staff_router = Router(tags=["staff"])


class MoveIn(Input):
    node: str = Field(description="The name of the mail node to move the domain to.",
                      max_length=50)


class MoveOut(Schema):
    domain: str
    source: str = Field(description="The node the domain moves from.")
    target: str = Field(description="The node the domain moves to.")
    step: str = Field(description="queued, copying, switching, final_sync, retiring, done or "
                      "failed (then failed_step says where; resume it with manage.py "
                      "movedomain --resume).")
    failed_step: str
    mailboxes_done: int = Field(description="Mailboxes copied in the current copy round.")
    mailboxes_total: int
    attempts: int = Field(description="Failed attempts at the current step.")
    last_error: str
    created_at: dt.datetime
    copied_at: dt.datetime | None
    switched_at: dt.datetime | None
    synced_at: dt.datetime | None
    finished_at: dt.datetime | None


class DomainNodeOut(Schema):
    domain: str
    node: str = Field(description="The node the domain lives on now.")
    move: MoveOut | None = Field(description="Its latest move (open or done); null if never.")


def move_out(move: DomainMove) -> dict:
    return {
        "domain": move.domain_name, "source": move.source.name, "target": move.target.name,
        **{name: getattr(move, name) for name in (
            "step", "failed_step", "mailboxes_done", "mailboxes_total", "attempts",
            "last_error", "created_at", "copied_at", "switched_at", "synced_at",
            "finished_at")},
    }


@staff_router.post("/domains/{name}/move", response={202: MoveOut, WRITE_ERRORS: ErrorOut},
                   summary="Move a domain and its mail to another mail node")
def move_start(request, name: str, payload: MoveIn):
    """Starts the move (202) and returns at once; GET the same path for its progress. One open
    move per domain (409 while one is). See docs/operations.md, "Moving a domain"."""
    domain = domain_get(request.auth, name)
    move = moves.move_start(actor=request.auth, domain=domain, node=payload.node)
    return Status(202, move_out(move))


@staff_router.get("/domains/{name}/move",
                  response={200: DomainNodeOut, READ_ERRORS | {403}: ErrorOut},
                  summary="A domain's node and its latest move between mail nodes")
def move_get(request, name: str):
    domain = domain_get(request.auth, name)
    move = DomainMove.objects.select_related("source", "target").filter(
        domain_id=domain.pk).first()
    return {"domain": domain.name, "node": domain.node.name,
            "move": move_out(move) if move else None}
