"""Webmail single sign-on: the portal's side of the one-time tokens (docs/webmail.md).

The tokens live in the node's store (webmail/sso/sso.sqlite under the node state directory,
mailhost/backend/webmail.py), which the Roundcube plugin on the node redeems from. Like the ban
store (bans/node.py) the portal writes it on its own host: a single-box install has one node.
"""

import secrets
from urllib.parse import urlencode

from django.conf import settings
from django.db import transaction

from mailhost.backend.config import NodeConfig
from mailhost.backend.webmail import WEBMAIL_SSO_DB, SsoStore
from mailhost.errors import Conflict
from tenants.access import Actor
from tenants.audit import audit_record


def _store() -> SsoStore:
    store = SsoStore(NodeConfig.from_settings().path(WEBMAIL_SSO_DB))
    if not store.path.exists():
        store.path.parent.mkdir(parents=True, exist_ok=True)  # the stack may not run here yet
        store.ensure_schema()
    return store


def new_portal_session_id() -> str:
    """The id a portal session's webmail sessions hang on (kept in the portal session)."""
    return secrets.token_urlsafe(24)


@transaction.atomic
def webmail_sso_start(*, actor: Actor, mailbox, portal_session: str, session_expires: float
                      ) -> str:
    """A one-time sign-on token for `mailbox`, valid once, for a minute, for that mailbox only,
    and a webmail session bound to `portal_session` (ended by `webmail_sso_end`)."""
    if actor.mailbox is None or actor.mailbox.pk != mailbox.pk:
        raise Conflict("Only the mailbox's holder can open its webmail.", code="not_holder")
    if not settings.MAILHOST_WEBMAIL:
        raise Conflict("Webmail is not enabled on this server.", code="webmail_disabled")
    organisation = mailbox.domain.organisation
    token = _store().issue(
        address=mailbox.address, session=portal_session, organisation=organisation.name,
        session_expires=int(session_expires),
    )
    audit_record(
        actor=actor, organisation_id=organisation.pk, action="mailbox.webmail_sign_on",
        target_type="mailbox", target=mailbox.address,
    )
    return token


def webmail_sso_end(*, portal_session: str | None) -> int:
    """End every webmail session opened from `portal_session` (sign-out, expiry, suspension).
    Returns how many ended. Only the node's store changes: nothing to audit or reconcile."""
    if not portal_session:
        return 0
    return _store().end_session(portal_session)


def webmail_sso_url(*, mailbox, token: str) -> str:
    """Where the browser redeems the token: Roundcube's login action (MAILHOST_WEBMAIL_URL, by
    default /webmail/ on the host the portal is reached at, through the edge)."""
    base = settings.MAILHOST_WEBMAIL_URL or "/webmail/"
    query = urlencode({"_task": "login", "_action": "login", "_user": mailbox.address,
                       "_mailhost_sso": token})
    return f"{base}?{query}"
