"""/mailbox/: the mailbox holder's own pages. Sign-in is with the mailbox address and mailbox
password, never an operator account; the session holds only the mailbox id (plus times and a
fingerprint of the password hash, so a password change ends every other session).

Failed sign-ins are counted in Redis per IP + address and per IP; past the limits the form is
refused with a message saying how long to wait.
"""

import contextlib
import hashlib
import logging
import time
from functools import wraps
from urllib.parse import urlencode

import redis
from django.conf import settings
from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.crypto import salted_hmac
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from bans.node import login_failed
from mailboxes import autoconfig, selectors, services
from mailboxes.forms import (
    AppPasswordForm,
    ForwardingForm,
    PortalLoginForm,
    PortalPasswordForm,
    VacationForm,
    lines,
)
from mailhost.errors import Conflict, DomainError, Invalid
from mailhost.http import client_ip
from mailhost.passwords import hash_password, verify_password
from mailhost.redis import get_redis
from tenants.access import Actor
from tenants.pages import error_response, form_errors_from, paginate
from webmail.services import webmail_sso_end

logger = logging.getLogger(__name__)

SESSION_ID = "mailbox_id"
SESSION_AUTH = "mailbox_auth"
SESSION_LOGIN_AT = "mailbox_login_at"
SESSION_SEEN_AT = "mailbox_seen_at"
# The id this portal session's webmail sessions hang on (webmail/): ending the portal session
# ends them.
WEBMAIL_SESSION = "mailbox_webmail"
SESSION_KEYS = (SESSION_ID, SESSION_AUTH, SESSION_LOGIN_AT, SESSION_SEEN_AT, WEBMAIL_SESSION)
_DUMMY_HASH: list[str] = []  # computed once: makes a wrong address cost as much as a wrong password


def _auth_fingerprint(mailbox) -> str:
    return salted_hmac("mailhost.mailbox-portal", mailbox.password_hash).hexdigest()


def _end_session(request) -> None:
    webmail_sso_end(portal_session=request.session.get(WEBMAIL_SESSION))
    for key in SESSION_KEYS:
        request.session.pop(key, None)


def _session_mailbox(request):
    """The signed-in mailbox, or None (after ending a session that expired or went stale)."""
    session = request.session
    mailbox_id = session.get(SESSION_ID)
    if mailbox_id is None:
        return None
    now = time.time()
    login_at, seen_at = session.get(SESSION_LOGIN_AT, 0), session.get(SESSION_SEEN_AT, 0)
    if (
        now - login_at > settings.MAILBOX_PORTAL_MAX_SECONDS
        or now - seen_at > settings.MAILBOX_PORTAL_IDLE_SECONDS
    ):
        _end_session(request)
        messages.info(request, "Your session expired. Please sign in again.")
        return None
    mailbox = selectors.mailbox_for_session(mailbox_id)
    if mailbox is None or session.get(SESSION_AUTH) != _auth_fingerprint(mailbox):
        _end_session(request)  # suspended, deleted, or the password was changed elsewhere
        return None
    session[SESSION_SEEN_AT] = now
    return mailbox


def portal_page(view):
    @never_cache
    @wraps(view)
    def wrapper(request, *args, **kwargs):
        mailbox = _session_mailbox(request)
        if mailbox is None:
            query = urlencode({"next": request.get_full_path()})
            return redirect(f"{reverse('mailbox:login')}?{query}")
        request.mailbox = mailbox
        request.actor = Actor(mailbox=mailbox, ip=client_ip(request))
        try:
            return view(request, *args, **kwargs)
        except DomainError as exc:
            return error_response(request, exc, template="mailbox/error.html")

    return wrapper


# --- sign-in rate limit ------------------------------------------------------------------------


def _limit_keys(ip: str, address: str) -> tuple[str, str]:
    digest = hashlib.sha256(address.strip().lower().encode()).hexdigest()[:32]
    return f"mailhost:portal-login:{ip}:{digest}", f"mailhost:portal-login-ip:{ip}"


def _wait_seconds(ip: str, address: str) -> int:
    """Seconds until another attempt is allowed (0: allowed now)."""
    pair_key, ip_key = _limit_keys(ip, address)
    try:
        client = get_redis()
        pair, per_ip = client.mget(pair_key, ip_key)
        waits = []
        if int(pair or 0) >= settings.MAILBOX_PORTAL_LOGIN_ATTEMPTS:
            waits.append(client.ttl(pair_key))
        if int(per_ip or 0) >= settings.MAILBOX_PORTAL_LOGIN_IP_ATTEMPTS:
            waits.append(client.ttl(ip_key))
    except redis.RedisError as exc:  # sign-in keeps working; bcrypt still slows guessing
        logger.warning("mailbox sign-in rate limit unavailable: %s", exc)
        return 0
    return max([w for w in waits if w and w > 0] or [0 if not waits else 1])


def _count_failure(ip: str, address: str) -> None:
    window = settings.MAILBOX_PORTAL_LOGIN_WINDOW_SECONDS
    try:
        pipe = get_redis().pipeline()
        for key in _limit_keys(ip, address):
            pipe.incr(key)
            pipe.expire(key, window, nx=True)
        pipe.execute()
    except redis.RedisError as exc:
        logger.warning("mailbox sign-in failure not counted: %s", exc)


def _clear_failures(ip: str, address: str) -> None:
    with contextlib.suppress(redis.RedisError):
        get_redis().delete(_limit_keys(ip, address)[0])


def _check_credentials(address: str, password: str):
    mailbox = selectors.mailbox_for_login(address)
    if mailbox is None:
        if not _DUMMY_HASH:
            _DUMMY_HASH.append(hash_password("not-a-real-password-000"))
        verify_password(password, _DUMMY_HASH[0])
        return None
    return mailbox if verify_password(password, mailbox.password_hash) else None


# --- sign in / out -----------------------------------------------------------------------------


@never_cache
def login(request):
    if _session_mailbox(request) is not None:
        return redirect("mailbox:home")
    form = PortalLoginForm(request.POST or None)
    status = 200
    if request.method == "POST" and form.is_valid():
        ip = client_ip(request) or "unknown"
        address = form.cleaned_data["address"]
        wait = _wait_seconds(ip, address)
        if wait:
            minutes = max(1, round(wait / 60))
            form.add_error(
                None,
                f"Too many failed sign-ins for this address from your network. "
                f"Try again in about {minutes} minute{'s' if minutes != 1 else ''}.",
            )
            status = 429
        else:
            mailbox = _check_credentials(address, form.cleaned_data["password"])
            if mailbox is None:
                _count_failure(ip, address)
                login_failed(client_ip(request), address, "mailbox-portal")
                form.add_error(None, "The address or password is not right.")
                status = 401
            else:
                _clear_failures(ip, address)
                _start_session(request, mailbox)
                return redirect(_next_url(request))
    elif request.method == "POST":
        status = 422
    return render(request, "mailbox/login.html", {"form": form}, status=status)


def _start_session(request, mailbox) -> None:
    request.session.cycle_key()  # no session fixation
    now = time.time()
    request.session[SESSION_ID] = mailbox.pk
    request.session[SESSION_AUTH] = _auth_fingerprint(mailbox)
    request.session[SESSION_LOGIN_AT] = now
    request.session[SESSION_SEEN_AT] = now


def _next_url(request) -> str:
    target = request.GET.get("next") or ""
    safe = url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    )
    if safe and target.startswith("/mailbox/"):
        return target
    return reverse("mailbox:home")


@require_POST
def logout(request):
    _end_session(request)
    request.session.cycle_key()
    messages.success(request, "You have signed out.")
    return redirect("mailbox:login")


# --- pages -------------------------------------------------------------------------------------


def _page(request, template, context=None, *, status=200, section=""):
    base = {"mailbox": request.mailbox, "section": section}
    return render(request, template, {**base, **(context or {})}, status=status)


@portal_page
def home(request):
    context = {"webmail": settings.MAILHOST_WEBMAIL_URL, "webmail_sso": settings.MAILHOST_WEBMAIL}
    return _page(request, "mailbox/home.html", context, section="home")


@portal_page
def setup(request):
    context = {"servers": autoconfig.servers(), "webmail": settings.MAILHOST_WEBMAIL_URL}
    return _page(request, "mailbox/setup.html", context, section="setup")


@portal_page
def mobileconfig(request):
    mailbox = request.mailbox
    body = autoconfig.mobileconfig(mailbox.address, mailbox.display_name)
    response = HttpResponse(body, content_type="application/x-apple-aspen-config")
    response["Content-Disposition"] = f'attachment; filename="{mailbox.address}.mobileconfig"'
    return response


@portal_page
def password(request):
    form = PortalPasswordForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            services.mailbox_change_own_password(
                actor=request.actor, mailbox=request.mailbox,
                current_password=form.cleaned_data["current_password"],
                new_password=form.cleaned_data["new_password"],
            )
        except Invalid as exc:
            form_errors_from(form, exc)
        else:
            # This session stays signed in; every other one ends (the fingerprint changed).
            request.session[SESSION_AUTH] = _auth_fingerprint(request.mailbox)
            request.session.cycle_key()
            messages.success(
                request, "Your password was changed. Use the new one in your mail apps now."
            )
            return redirect("mailbox:home")
    return _page(request, "mailbox/password.html", {"form": form},
                 status=422 if form.errors else 200, section="password")


@portal_page
def forwarding(request):
    mailbox = request.mailbox
    form = ForwardingForm(
        request.POST or None,
        initial={
            "forward_to": "\n".join(mailbox.forward_to), "keep_copy": mailbox.forward_keep_copy
        },
    )
    if request.method == "POST" and form.is_valid():
        try:
            services.mailbox_set_forwarding(
                actor=request.actor, mailbox=mailbox,
                forward_to=lines(form.cleaned_data["forward_to"]),
                keep_copy=form.cleaned_data["keep_copy"],
            )
        except Invalid as exc:
            form_errors_from(form, exc)
        else:
            messages.success(request, "Forwarding saved." if mailbox.forward_to
                             else "Forwarding is off.")
            return redirect("mailbox:forwarding")
    return _page(request, "mailbox/forwarding.html", {"form": form},
                 status=422 if form.errors else 200, section="forwarding")


@portal_page
def vacation(request):
    mailbox = request.mailbox
    form = VacationForm(request.POST or None, initial={
        "enabled": mailbox.vacation_enabled, "subject": mailbox.vacation_subject,
        "body": mailbox.vacation_body, "start": mailbox.vacation_start,
        "end": mailbox.vacation_end,
    })
    if request.method == "POST" and form.is_valid():
        try:
            services.mailbox_set_vacation(actor=request.actor, mailbox=mailbox,
                                          **form.cleaned_data)
        except Invalid as exc:
            form_errors_from(form, exc)
        else:
            messages.success(request, "Auto-reply on." if mailbox.vacation_enabled
                             else "Auto-reply off.")
            return redirect("mailbox:vacation")
    return _page(request, "mailbox/vacation.html", {"form": form},
                 status=422 if form.errors else 200, section="vacation")


@portal_page
def app_passwords(request):
    form = AppPasswordForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            app_password, raw = services.app_password_create(
                actor=request.actor, mailbox=request.mailbox, name=form.cleaned_data["name"]
            )
        except (Invalid, Conflict) as exc:
            form_errors_from(form, exc)
        else:
            response = _page(request, "mailbox/app_password_created.html",
                             {"app_password": app_password, "raw": raw}, section="apps")
            response["Cache-Control"] = "no-store"
            return response
    context = {
        "form": form,
        "page": paginate(request, selectors.app_password_list(request.actor, request.mailbox)),
    }
    return _page(request, "mailbox/app_passwords.html", context,
                 status=422 if form.errors else 200, section="apps")


@portal_page
def app_password_revoke(request, pk):
    app_password = selectors.app_password_get(request.actor, request.mailbox, pk)
    if request.method == "POST":
        services.app_password_revoke(actor=request.actor, app_password=app_password)
        messages.success(request, f"“{app_password.name}” can no longer sign in.")
        return redirect("mailbox:app_passwords")
    return _page(request, "mailbox/confirm.html", {
        "title": f"Revoke the app password for “{app_password.name}”?",
        "body": "That device stops getting mail until you give it a new app password.",
        "button": "Revoke", "cancel": reverse("mailbox:app_passwords"),
    }, section="apps")
