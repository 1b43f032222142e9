"""Writes for organisations, members, invitations and API tokens. Each records an AuditEvent."""

import datetime as dt
import re
import secrets

from allauth.account.models import EmailAddress
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.utils import timezone

from mailhost.errors import Conflict, Forbidden, Invalid, NotFound
from mailhost.validation import one_line_problem
from tenants.access import SUSPENDED_DETAIL, Actor, require_owner, require_staff, require_write
from tenants.audit import audit_record
from tenants.models import ApiToken, Invitation, Membership, Organisation, Role

_SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,48}[a-z0-9])?$")
# /mail-admin/<slug>/ would be hidden behind these pages of /mail-admin/ itself.
RESERVED_SLUGS = frozenset({"switch", "invitations", "organisations", "queue", "outbound"})
INVITATION_LIFETIME = dt.timedelta(days=7)


@transaction.atomic
def organisation_create(*, actor: Actor, slug: str, name: str) -> Organisation:
    require_staff(actor, "create organisations")
    if not _SLUG.match(slug or ""):
        raise Invalid(
            "The slug uses lower-case letters, digits and inner hyphens (max 50).", field="slug"
        )
    if slug in RESERVED_SLUGS:
        raise Invalid(f"{slug!r} is reserved; choose another slug.", field="slug")
    if len(name or "") > 200 or any(ord(ch) < 32 for ch in name or ""):
        raise Invalid("The name is one line of at most 200 characters.", field="name")
    if not (name or "").strip():
        raise Invalid("Enter a name.", field="name")
    name = _one_line(name, field="name", label="organisation name", limit=200)
    if Organisation.objects.filter(slug=slug).exists():
        raise Conflict(f"An organisation with slug {slug!r} exists.", field="slug")
    organisation = Organisation.objects.create(slug=slug, name=name.strip())
    audit_record(
        actor=actor,
        organisation_id=organisation.pk,
        action="organisation.create",
        target_type="organisation",
        target=slug,
        after={"slug": slug, "name": organisation.name},
    )
    return organisation


@transaction.atomic
def organisation_onboard(
    *, actor: Actor, slug: str, name: str, admin_email: str | None = None, admin_role: str = "owner"
) -> tuple[Organisation, Invitation | None, str | None]:
    """Create a client organisation and invite its first admin, all or nothing.

    Returns the organisation, the invitation and its one-time token (None, None without an
    e-mail address). Sending the invitation is the caller's, as for any invitation.
    """
    organisation = organisation_create(actor=actor, slug=slug, name=name)
    if not admin_email:
        return organisation, None, None
    if admin_role not in (Role.OWNER, Role.ADMIN):
        raise Invalid("The first admin is an owner or an admin.", field="admin_role")
    try:
        invitation, raw = invitation_create(
            actor=actor, organisation=organisation, email=admin_email, role=admin_role
        )
    except Invalid as exc:  # name the input as this service calls it
        raise Invalid(exc.detail, field=f"admin_{exc.field}", code=exc.code) from None
    return organisation, invitation, raw


@transaction.atomic
def membership_set(*, actor: Actor, organisation: Organisation, user, role: str) -> Membership:
    """Add `user` to the organisation with `role`, or change their role."""
    require_owner(actor, organisation.pk)
    if role not in Role.values:
        raise Invalid(f"Role must be one of {', '.join(Role.values)}.", field="role")
    membership, created = Membership.objects.select_for_update().get_or_create(
        user=user, organisation=organisation, defaults={"role": role}
    )
    before = None if created else {"role": membership.role}
    if not created and membership.role != role:
        _refuse_removing_last_owner(membership)
        membership.role = role
        membership.save(update_fields=["role"])
    audit_record(
        actor=actor,
        organisation_id=organisation.pk,
        action="membership.set",
        target_type="membership",
        target=user.get_username(),
        before=before,
        after={"role": role},
    )
    return membership


@transaction.atomic
def membership_remove(*, actor: Actor, membership: Membership) -> None:
    require_owner(actor, membership.organisation_id)
    _refuse_removing_last_owner(membership)
    audit_record(
        actor=actor,
        organisation_id=membership.organisation_id,
        action="membership.remove",
        target_type="membership",
        target=membership.user.get_username(),
        before={"role": membership.role},
    )
    membership.delete()


def _refuse_removing_last_owner(membership: Membership) -> None:
    if membership.role != Role.OWNER:
        return
    owners = Membership.objects.filter(organisation_id=membership.organisation_id, role="owner")
    if owners.count() <= 1:
        raise Conflict("An organisation needs at least one owner.", field="role")


@transaction.atomic
def invitation_create(
    *, actor: Actor, organisation: Organisation, email: str, role: str
) -> tuple[Invitation, str]:
    """Invite an e-mail address; returns the invitation and its one-time token."""
    require_owner(actor, organisation.pk)
    email = (email or "").strip().lower()
    if "@" not in email or any(ch.isspace() for ch in email) or one_line_problem(email):
        raise Invalid("Enter a valid e-mail address.", field="email")
    if role not in Role.values:
        raise Invalid(f"Role must be one of {', '.join(Role.values)}.", field="role")
    raw = secrets.token_urlsafe(32)
    try:
        with transaction.atomic():
            invitation = Invitation.objects.create(
                organisation=organisation,
                email=email,
                role=role,
                token_hash=ApiToken.hash(raw),
                invited_by=actor.user,
                expires_at=timezone.now() + INVITATION_LIFETIME,
            )
    except IntegrityError:
        raise Conflict(f"{email} already has an open invitation.", field="email") from None
    audit_record(
        actor=actor,
        organisation_id=organisation.pk,
        action="invitation.create",
        target_type="invitation",
        target=email,
        after={"email": email, "role": role},
    )
    return invitation, raw


def invitation_accept(*, user, raw_token: str, ip: str | None = None) -> Membership:
    """Join the organisation an invitation is for, as the address it was sent to.

    The link alone proves nothing (it can be forwarded, leaked or read over a shoulder): the
    signed-in user must hold a verified e-mail address equal to the invited one. Anything else
    is refused, audited, and leaves the invitation open for the person it was meant for.
    """
    actor = Actor(user=user, ip=ip)
    with transaction.atomic():
        invitation = (
            Invitation.objects.select_for_update()
            .filter(token_hash=ApiToken.hash(raw_token or ""), accepted_at__isnull=True)
            .first()
        )
        if invitation is None or invitation.expires_at <= timezone.now():
            raise NotFound("This invitation is not valid or has expired.")
        refusal = _invitation_refusal(user, invitation)
        if refusal is None:
            return _invitation_join(actor, invitation)
    _audit_refused_invitation(actor, invitation, refusal)
    raise Forbidden(refusal, code="invitation_for_another_address")


def _invitation_refusal(user, invitation: Invitation) -> str | None:
    """Why `user` may not accept `invitation`, or None if they may."""
    own = EmailAddress.objects.filter(user=user, email__iexact=invitation.email).first()
    if own is not None and own.verified:
        return None
    if own is not None:
        return (
            f"Verify {own.email} first (follow the link in the confirmation e-mail), then "
            "open the invitation again."
        )
    return (
        "This invitation was sent to another e-mail address. Sign in with the account of the "
        "address it was sent to, or ask the organisation's owner to invite this one."
    )


def _invitation_join(actor: Actor, invitation: Invitation) -> Membership:
    invitation.accepted_at = timezone.now()
    invitation.save(update_fields=["accepted_at"])
    membership, _ = Membership.objects.get_or_create(
        user=actor.user, organisation=invitation.organisation, defaults={"role": invitation.role}
    )
    audit_record(
        actor=actor,
        organisation_id=invitation.organisation_id,
        action="invitation.accept",
        target_type="invitation",
        target=invitation.email,
        after={"role": membership.role},
    )
    return membership


@transaction.atomic
def _audit_refused_invitation(actor: Actor, invitation: Invitation, reason: str) -> None:
    # Written after the lookup's transaction, so the refusal is on record although the
    # request fails; the owners see who tried to use the link.
    audit_record(
        actor=actor,
        organisation_id=invitation.organisation_id,
        action="invitation.accept_refused",
        target_type="invitation",
        target=invitation.email,
        after={"reason": reason, "signed_in_as": actor.user.get_username()},
    )


@transaction.atomic
def invitation_revoke(*, actor: Actor, invitation: Invitation) -> None:
    """Withdraw an open invitation: its link stops working at once."""
    require_owner(actor, invitation.organisation_id)
    if invitation.accepted_at is not None:
        raise Conflict(f"{invitation.email} has already accepted.", code="already_accepted")
    audit_record(
        actor=actor,
        organisation_id=invitation.organisation_id,
        action="invitation.revoke",
        target_type="invitation",
        target=invitation.email,
        before={"email": invitation.email, "role": invitation.role},
    )
    invitation.delete()


def invitations_expire(*, now: dt.datetime | None = None) -> int:
    """Delete invitations past their expiry that were never accepted; returns how many."""
    now = now or timezone.now()
    deleted, _ = Invitation.objects.filter(accepted_at__isnull=True, expires_at__lte=now).delete()
    return deleted


@transaction.atomic
def api_token_create(
    *,
    actor: Actor,
    organisation: Organisation,
    name: str,
    read_only: bool = False,
    expires_at: dt.datetime | None = None,
) -> tuple[ApiToken, str]:
    """Create a token; returns it with the raw secret, which is never stored or shown again.

    Only people (and the box's operator commands) create tokens. A token that could mint
    tokens would outlive its own expiry and revocation through a child it made itself.
    """
    require_write(actor, organisation.pk, "That organisation")
    if actor.token is not None:
        raise Forbidden(
            "An API token cannot create API tokens: a person signed in to the portal "
            "creates them (mail-admin → API tokens).",
            code="token_cannot_create_tokens",
        )
    name = (name or "").strip()
    if not name or len(name) > 100:
        raise Invalid("Give the token a name of up to 100 characters.", field="name")
    name = _one_line(name, field="name", label="token name", limit=100)
    if expires_at is not None and expires_at <= timezone.now():
        raise Invalid("The expiry must be in the future.", field="expires_at")
    raw = ApiToken.new_secret()
    token = ApiToken.objects.create(
        organisation=organisation,
        name=name,
        token_hash=ApiToken.hash(raw),
        hint=raw[:10],
        read_only=read_only,
        created_by=actor.user if actor.user is not None else None,
        expires_at=expires_at,
    )
    audit_record(
        actor=actor,
        organisation_id=organisation.pk,
        action="api_token.create",
        target_type="api_token",
        target=f"{name} ({token.hint}…)",
        after={"name": name, "read_only": read_only, "expires_at": _iso(expires_at)},
    )
    return token, raw


@transaction.atomic
def api_token_revoke(*, actor: Actor, token: ApiToken) -> ApiToken:
    """Revoke a token. A token may revoke itself (a leaked one can be killed with itself),
    never another: token management is for people."""
    itself = actor.token is not None and actor.token.pk == token.pk
    if not itself:
        require_write(actor, token.organisation_id, "That token")
    if actor.token is not None and not itself:
        raise Forbidden(
            "An API token can revoke only itself: a person signed in to the portal revokes "
            "other tokens.",
            code="token_cannot_revoke_tokens",
        )
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
        audit_record(
            actor=actor,
            organisation_id=token.organisation_id,
            action="api_token.revoke",
            target_type="api_token",
            target=str(token),
        )
    return token


@transaction.atomic
def staff_token_create(
    *, actor: Actor, name: str, expires_at: dt.datetime | None = None
) -> tuple[ApiToken, str]:
    """An install-wide staff token (staff API only); returns it with its secret, shown once.

    Only a staff user (Django admin) or the box's operator (`manage.py createapitoken --staff`)
    may create one: never a token, not even a staff token.
    """
    if actor.token is not None or actor.mailbox is not None or not actor.is_global:
        raise Forbidden("Only staff, signed in or at the command line, create staff tokens.",
                        code="staff_only")
    name = (name or "").strip()
    if not name or len(name) > 100:
        raise Invalid("Give the token a name of up to 100 characters.", field="name")
    if expires_at is not None and expires_at <= timezone.now():
        raise Invalid("The expiry must be in the future.", field="expires_at")
    raw = ApiToken.new_secret()
    token = ApiToken.objects.create(
        organisation=None,
        staff=True,
        name=name,
        token_hash=ApiToken.hash(raw),
        hint=raw[:10],
        created_by=actor.user,
        expires_at=expires_at,
    )
    audit_record(
        actor=actor,
        organisation_id=None,
        action="api_token.create_staff",
        target_type="api_token",
        target=f"{name} ({token.hint}…)",
        after={"name": name, "staff": True, "expires_at": _iso(expires_at)},
    )
    return token, raw


def api_token_admit(token: ApiToken, *, staff_api: bool) -> None:
    """The rule for which door a token opens; raises Forbidden saying why not.

    A staff token opens the staff API and nothing else; an organisation's token never opens
    the staff API, and opens nothing while its organisation is suspended.
    """
    if staff_api and not token.staff:
        raise Forbidden(
            "This endpoint needs a staff token (manage.py createapitoken --staff); an "
            "organisation's token is never accepted here.",
            code="staff_only",
        )
    if not staff_api and token.staff:
        raise Forbidden(
            "A staff token works only on /api/v1/staff/ endpoints. Use an organisation's "
            "token here.",
            code="staff_token",
        )
    if token.organisation is not None and token.organisation.suspended:
        raise Forbidden(SUSPENDED_DETAIL, code="organisation_suspended")


def api_token_authenticate(raw: str) -> ApiToken | None:
    """The usable token for a raw bearer secret, with its last use recorded; None otherwise."""
    if not raw or not raw.startswith(ApiToken.PREFIX) or len(raw) > 200:
        return None
    token = (
        ApiToken.objects.select_related("organisation")
        .filter(token_hash=ApiToken.hash(raw))
        .first()
    )
    if token is None or not token.is_usable():
        return None
    now = timezone.now()
    # Record use at most once a minute: a busy client should not turn reads into writes.
    if token.last_used_at is None or now - token.last_used_at > dt.timedelta(minutes=1):
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now
    return token


def user_create_staff(*, email: str, password: str):
    """A superuser with a verified e-mail address (used by `make up` and tests)."""
    user_model = get_user_model()
    user = user_model.objects.create_superuser(username=email, email=email, password=password)
    EmailAddress.objects.create(user=user, email=email, verified=True, primary=True)
    return user


def _one_line(raw: str, *, field: str, label: str, limit: int) -> str:
    value = raw.strip()
    if len(value) > limit:
        raise Invalid(f"The {label} is at most {limit} characters.", field=field)
    problem = one_line_problem(value)
    if problem:
        raise Invalid(f"The {label} {problem}.", field=field)
    return value


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value else None
