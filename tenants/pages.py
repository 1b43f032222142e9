"""What every server-rendered page shares: the actor, the organisation in the URL, domain errors
as HTTP responses (404/403/409/422 with the service's message), and pagination.

Views stay thin: they read through selectors, write through services, and let a DomainError
bubble up to `operator_page`, which renders it.
"""

from functools import wraps

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.paginator import Page, Paginator
from django.shortcuts import render
from django.views.decorators.cache import never_cache

from mailhost.errors import DomainError, Forbidden, NotFound
from mailhost.http import client_ip
from tenants.access import Actor
from tenants.models import WRITE_ROLES
from tenants.selectors import organisation_get, organisation_list

TITLES = {404: "Not found", 403: "Not allowed", 409: "Conflict", 422: "Check your input"}


def error_response(request, exc: DomainError, *, template: str = "errors/error.html"):
    status = exc.status if exc.status in TITLES else 400
    context = {"status": status, "title": TITLES.get(status, "Error"), "detail": exc.detail}
    return render(request, template, context, status=status)


def operator_page(view):
    """A /mail-admin/ view: signed-in operator, `request.actor`; with an `org` URL argument,
    `request.organisation` (another tenant's is a 404) and `request.can_write`."""

    @login_required
    @never_cache
    @wraps(view)
    def wrapper(request, *args, **kwargs):
        request.actor = Actor(user=request.user, ip=client_ip(request))
        request.organisations = organisation_list(request.actor)  # the switcher; one query
        try:
            slug = kwargs.pop("org", None)
            if slug is not None:
                request.organisation = organisation_get(request.actor, slug)
                request.role = _role(request.actor, request.organisation)
                request.can_write = request.role == "staff" or (
                    request.role in WRITE_ROLES and not request.organisation.suspended
                )
            return view(request, *args, **kwargs)
        except DomainError as exc:
            return error_response(request, exc)

    return wrapper


def _role(actor: Actor, organisation) -> str:
    if actor.is_global:
        return "staff"
    role = actor.role_in(organisation.pk)
    if role is None:  # organisation_get already refused it; belt and braces
        raise NotFound("That organisation was not found.")
    return role


def require_page_write(request) -> None:
    """Refuse a write by a read-only member before any form is shown or processed."""
    if not getattr(request, "can_write", False):
        raise Forbidden("Your role in this organisation is read-only.")


def paginate(request, items, *, per_page: int | None = None, param: str = "page") -> Page:
    """One page of `items` from ?page=N (out-of-range pages show the last one).

    Two queries whatever the size of the list: one COUNT, one slice.
    """
    paginator = Paginator(items, per_page or settings.MAILHOST_PAGE_SIZE)
    page = paginator.get_page(request.GET.get(param))
    page.param = param
    return page


def form_errors_from(form, exc: DomainError, fields: dict[str, str] | None = None) -> None:
    """Show a service's error on the form field it names (or on the form as a whole)."""
    field = (fields or {}).get(exc.field, exc.field)
    if field in form.fields:
        form.add_error(field, exc.detail)
    else:
        form.add_error(None, exc.detail)


def confirm_page(request, *, title, body, button, cancel, section, danger=True, fields=None):
    """The page that asks before anything destructive; the form posts back to the same URL."""
    context = {
        "section": section, "title": title, "body": body, "button": button, "cancel": cancel,
        "danger": danger, "fields": fields or {},
    }
    return render(request, "mail_admin/confirm.html", context)


def confirm_then_post(request, perform, *, confirmed_by: str | None = None, **page):
    """A confirm-then-POST view in one call: a GET shows the confirmation page (`page`: the
    arguments of confirm_page), whose form posts back to the same URL; that POST runs
    `perform()` (the service call, its message, the redirect) and returns its response.

    With `confirmed_by`, only a POST carrying that field performs: a form elsewhere may post
    its choice here first, and is asked to confirm it."""
    if request.method == "POST" and (confirmed_by is None or request.POST.get(confirmed_by)):
        return perform()
    return confirm_page(request, **page)
