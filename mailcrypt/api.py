"""The staff API's encryption-at-rest endpoints (mounted under /api/v1/staff/ by the staff
door in mailhost.api: a staff token or a staff user's session only)."""

from ninja import Field, Router, Schema

from mailcrypt.selectors import encryption_state
from mailcrypt.services import organisation_set_encryption
from tenants.api_common import READ_ERRORS, WRITE_ERRORS, ErrorOut, Input, Slug
from tenants.selectors import organisation_get

staff_router = Router(tags=["staff"])


class EncryptionIn(Input):
    enabled: bool = Field(description="Store the organisation's new mail encrypted at rest.")


class EncryptionOut(Schema):
    enabled: bool = Field(description="New mail of its mailboxes is stored encrypted.")
    has_key: bool = Field(description="It has a key pair: kept when encryption is turned off, "
                          "so mail stored encrypted stays readable.")


@staff_router.get("/organisations/{slug}/encryption",
                  response={200: EncryptionOut, READ_ERRORS | {403}: ErrorOut},
                  summary="An organisation's encryption at rest")
def encryption_get(request, slug: Slug):
    return encryption_state(organisation_get(request.auth, slug))


@staff_router.put("/organisations/{slug}/encryption",
                  response={200: EncryptionOut, WRITE_ERRORS: ErrorOut},
                  summary="Turn an organisation's encryption at rest on or off")
def encryption_put(request, slug: Slug, payload: EncryptionIn):
    """On: new mail of its mailboxes is stored encrypted with the organisation's key
    (made the first time). Off: new mail is stored plain; what was encrypted stays readable.
    Idempotent. See docs/operations.md for what it protects against and what it does not."""
    organisation = organisation_get(request.auth, slug)
    organisation_set_encryption(actor=request.auth, organisation=organisation,
                                enabled=payload.enabled)
    return encryption_state(organisation)
