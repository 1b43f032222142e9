"""/mail-admin/ pages for the organisation itself: switcher, members and invitations, API tokens,
audit log. Reads through tenants.selectors, writes through tenants.services."""

import datetime as dt

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone

from mailboxes.services import organisation_set_suspended
from mailcrypt.selectors import encryption_enabled
from mailcrypt.services import organisation_set_encryption
from mailhost.errors import Conflict, DomainError, Forbidden, Invalid, NotFound
from mailhost.http import client_ip
from tenants import selectors, services
from tenants.access import require_staff
from tenants.forms import AuditFilterForm, InviteForm, OrganisationForm, RoleForm, TokenForm
from tenants.mail import send_invitation
from tenants.models import Role
from tenants.pages import (
    confirm_then_post,
    error_response,
    form_errors_from,
    operator_page,
    paginate,
)


def _render(request, template, context, *, status=200, section=""):
    return render(request, template, {"section": section, **context}, status=status)


def _require_owner(request) -> None:
    if request.role not in (Role.OWNER, "staff"):
        raise Forbidden("Only an owner of this organisation can manage its members.")


@operator_page
def switch(request):
    """The organisation switcher's target: ?org=<slug> → that organisation's dashboard."""
    organisation = selectors.organisation_get(request.actor, request.GET.get("org") or "")
    return redirect("mailboxes:dashboard", organisation.slug)


# --- members and invitations -------------------------------------------------------------------


@operator_page
def members(request):
    form = InviteForm(request.POST or None)
    status = 200
    if request.method == "POST":
        _require_owner(request)
        if form.is_valid():
            try:
                invitation, raw = services.invitation_create(
                    actor=request.actor, organisation=request.organisation, **form.cleaned_data
                )
            except (Invalid, Conflict) as exc:
                form_errors_from(form, exc)
            else:
                link = request.build_absolute_uri(reverse("tenants:accept", args=[raw]))
                _send_invitation(request, invitation, link)
                return _render(
                    request,
                    "mail_admin/invitation_sent.html",
                    {"invitation": invitation, "link": link},
                    section="members",
                )
        status = 422
    context = {
        "page": paginate(request, selectors.membership_list(request.actor, request.organisation)),
        "invitations": selectors.invitation_list_open(request.actor, request.organisation)[:100],
        "form": form,
        "can_manage": request.can_write and request.role in (Role.OWNER, "staff"),
    }
    return _render(request, "mail_admin/members.html", context, status=status, section="members")


def _send_invitation(request, invitation, link: str) -> None:
    send_invitation(invitation=invitation, link=link, inviter=request.user.email)


def _membership(request, pk: int):
    members = selectors.membership_list(request.actor, request.organisation)
    membership = members.filter(pk=pk).first()
    if membership is None:
        raise NotFound("That member was not found.")
    _require_owner(request)
    return membership


@operator_page
def member_role(request, pk):
    membership = _membership(request, pk)
    form = RoleForm(request.POST or None, initial={"role": membership.role})
    if request.method == "POST" and form.is_valid():
        try:
            services.membership_set(
                actor=request.actor,
                organisation=request.organisation,
                user=membership.user,
                role=form.cleaned_data["role"],
            )
        except (Invalid, Conflict) as exc:
            form_errors_from(form, exc)
        else:
            role = form.cleaned_data["role"]
            messages.success(request, f"{membership.user.email} is now {role}.")
            return redirect("tenants:members", request.organisation.slug)
    context = {"membership": membership, "form": form}
    return _render(
        request,
        "mail_admin/member_role.html",
        context,
        status=422 if form.errors else 200,
        section="members",
    )


@operator_page
def member_remove(request, pk):
    membership = _membership(request, pk)
    back = reverse("tenants:members", args=[request.organisation.slug])

    def perform():
        services.membership_remove(actor=request.actor, membership=membership)
        messages.success(request, f"{membership.user.email} was removed.")
        return redirect(back)

    return confirm_then_post(
        request,
        perform,
        title=f"Remove {membership.user.email} from {request.organisation.name}?",
        body="They lose access to this organisation at once. Their account stays.",
        button="Remove member", cancel=back, section="members",
    )


@operator_page
def invitation_revoke(request, pk):
    invitation = selectors.invitation_get_open(request.actor, request.organisation, pk)
    _require_owner(request)
    back = reverse("tenants:members", args=[request.organisation.slug])

    def perform():
        services.invitation_revoke(actor=request.actor, invitation=invitation)
        messages.success(request, f"The invitation to {invitation.email} was withdrawn.")
        return redirect(back)

    return confirm_then_post(
        request,
        perform,
        title=f"Withdraw the invitation to {invitation.email}?",
        body="The link in their e-mail stops working at once. You can invite them again.",
        button="Withdraw invitation", cancel=back, section="members",
    )


@login_required
def accept_invitation(request, token):
    """The link in an invitation e-mail: the signed-in user joins the organisation."""
    if request.method != "POST":
        return render(request, "mail_admin/invitation_accept.html", {"token": token})
    try:
        membership = services.invitation_accept(
            user=request.user, raw_token=token, ip=client_ip(request)
        )
    except DomainError as exc:
        return error_response(request, exc)
    messages.success(request, f"You joined {membership.organisation.name}.")
    return redirect("mailboxes:dashboard", membership.organisation.slug)


# --- API tokens --------------------------------------------------------------------------------


@operator_page
def tokens(request):
    form = TokenForm(request.POST or None)
    status = 200
    if request.method == "POST":
        if not request.can_write:
            raise Forbidden("Your role in this organisation is read-only.")
        if form.is_valid():
            days = form.cleaned_data["expires_in_days"]
            try:
                token, raw = services.api_token_create(
                    actor=request.actor,
                    organisation=request.organisation,
                    name=form.cleaned_data["name"],
                    read_only=form.cleaned_data["read_only"],
                    expires_at=timezone.now() + dt.timedelta(days=days) if days else None,
                )
            except Invalid as exc:
                form_errors_from(form, exc, {"expires_at": "expires_in_days"})
            else:
                response = _render(
                    request,
                    "mail_admin/token_created.html",
                    {"token": token, "raw": raw},
                    section="tokens",
                )
                response["Cache-Control"] = "no-store"
                return response
        status = 422
    context = {
        "page": paginate(request, selectors.api_token_list(request.actor, request.organisation)),
        "form": form,
        "now": timezone.now(),
    }
    return _render(request, "mail_admin/tokens.html", context, status=status, section="tokens")


@operator_page
def token_revoke(request, pk):
    token = selectors.api_token_get(request.actor, request.organisation, pk)
    if not request.can_write:
        raise Forbidden("Your role in this organisation is read-only.")
    back = reverse("tenants:tokens", args=[request.organisation.slug])

    def perform():
        services.api_token_revoke(actor=request.actor, token=token)
        messages.success(request, f"The token {token.name} was revoked.")
        return redirect(back)

    return confirm_then_post(
        request,
        perform,
        title=f"Revoke the API token “{token.name}”?",
        body="Anything using it is refused from now on. This cannot be undone.",
        button="Revoke token", cancel=back, section="tokens",
    )


# --- audit log ---------------------------------------------------------------------------------


@operator_page
def audit(request):
    form = AuditFilterForm(request.GET or None)
    filters = form.cleaned_data if form.is_valid() else {}
    events = selectors.audit_list(
        request.actor,
        request.organisation,
        action=(filters.get("action") or "").strip() or None,
        target=(filters.get("target") or "").strip() or None,
        actor_label=(filters.get("actor") or "").strip() or None,
        since=filters.get("since"),
        until=filters.get("until"),
    )
    context = {"form": form, "page": paginate(request, events)}
    status = 422 if form.errors else 200
    return _render(request, "mail_admin/audit.html", context, status=status, section="audit")


# --- staff: onboarding and suspending client organisations --------------------------------------


@operator_page
def organisation_new(request):
    """Staff create a client organisation, invite its first admin and land on its dashboard."""
    require_staff(request.actor, "create organisations")
    form = OrganisationForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            organisation, invitation, raw = services.organisation_onboard(
                actor=request.actor, **form.cleaned_data
            )
        except (Invalid, Conflict) as exc:
            form_errors_from(form, exc)
        else:
            if invitation is not None:
                link = request.build_absolute_uri(reverse("tenants:accept", args=[raw]))
                send_invitation(invitation=invitation, link=link, inviter=request.user.email)
                messages.success(request, f"Created {organisation.name} and e-mailed an invitation "
                                 f"to {invitation.email} ({invitation.role}), valid 7 days.")
            else:
                messages.success(request, f"Created {organisation.name}.")
            return redirect("mailboxes:dashboard", organisation.slug)
    return _render(request, "mail_admin/organisation_new.html", {"form": form},
                   status=422 if form.errors else 200)


@operator_page
def organisation_suspend(request):
    return _suspension(request, suspended=True)


@operator_page
def organisation_unsuspend(request):
    return _suspension(request, suspended=False)


def _suspension(request, *, suspended: bool):
    require_staff(request.actor, "suspend organisations")
    organisation = request.organisation
    back = reverse("mailboxes:dashboard", args=[organisation.slug])

    def perform():
        organisation_set_suspended(actor=request.actor, organisation=organisation,
                                   suspended=suspended)
        done = "suspended" if suspended else "no longer suspended"
        messages.success(request, f"{organisation.name} is {done}.")
        return redirect(back)

    if suspended:
        return confirm_then_post(
            request, perform, title=f"Suspend {organisation.name}?", button="Suspend organisation",
            body="Its domains stop receiving mail and its mailboxes stop logging in, its API "
                 "tokens are refused and its members can only look. Nothing is deleted: "
                 "lifting the suspension brings everything back.",
            cancel=back, section="dashboard",
        )
    return confirm_then_post(
        request, perform, title=f"Lift the suspension of {organisation.name}?",
        button="Lift suspension",
        body="Its domains receive mail again, its mailboxes log in and its tokens work.",
        cancel=back, section="dashboard", danger=False,
    )


@operator_page
def organisation_encryption(request):
    """Staff turn the organisation's encryption at rest on or off. The confirmation names
    the state it asks for, so a repeated or stale POST never flips it back."""
    require_staff(request.actor, "change encryption at rest")
    organisation = request.organisation
    back = reverse("mailboxes:dashboard", args=[organisation.slug])

    def perform():
        wanted = request.POST.get("enabled")
        if wanted not in ("on", "off"):
            raise Invalid("Choose on or off.", field="enabled")
        organisation_set_encryption(actor=request.actor, organisation=organisation,
                                    enabled=wanted == "on")
        done = "now stored encrypted" if wanted == "on" else "stored plain from now on"
        messages.success(request, f"New mail of {organisation.name} is {done}.")
        return redirect(back)

    if not encryption_enabled(organisation):
        return confirm_then_post(
            request, perform, confirmed_by="enabled", fields={"enabled": "on"},
            title=f"Encrypt {organisation.name}'s mail at rest?",
            button="Encrypt mail at rest",
            body="New mail of its mailboxes is stored encrypted on the mail node with the "
                 "organisation's own key; mail already stored stays as it is. Mail clients see "
                 "no difference. It protects copies of the mail storage (stolen disks, "
                 "backups, the storage provider), not a running node.",
            cancel=back, section="dashboard", danger=False,
        )
    return confirm_then_post(
        request, perform, confirmed_by="enabled", fields={"enabled": "off"},
        title=f"Stop encrypting {organisation.name}'s mail at rest?",
        button="Stop encrypting",
        body="Encryption at rest is on. Turned off, new mail of its mailboxes is stored plain; "
             "mail stored encrypted stays encrypted and readable: the organisation's key is "
             "kept.",
        cancel=back, section="dashboard",
    )
