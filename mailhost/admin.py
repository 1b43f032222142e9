"""Django admin: what the apps' admin classes share, and its sign-in through allauth."""

from django.conf import settings
from django.contrib import admin
from django.contrib.auth import REDIRECT_FIELD_NAME
from django.contrib.auth.views import redirect_to_login
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache

from mailhost.validation import validate_one_line


class OneLineFieldsAdmin(admin.ModelAdmin):
    """Staff edit rows here without the services, so the services' one-line rule for names
    (no control characters, line separators or bidirectional overrides) is added to the form."""

    one_line_fields: tuple[str, ...] = ()

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        field = super().formfield_for_dbfield(db_field, request, **kwargs)
        if field is not None and db_field.name in self.one_line_fields:
            field.validators.append(validate_one_line)
        return field


@never_cache
def admin_login(request):
    """Django admin's own sign-in form, replaced: it checked only a password, skipping
    allauth's second factor and its failed-login rate limits. Staff sign in through allauth
    (`LOGIN_URL`) like every operator and come back here; this view never reads credentials.
    """
    target = request.GET.get(REDIRECT_FIELD_NAME) or reverse("admin:index")
    if not url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        target = reverse("admin:index")
    user = request.user
    if user.is_authenticated and user.is_active and user.is_staff:
        return redirect(target)
    if user.is_authenticated:
        return render(
            request,
            "errors/error.html",
            {"status": 403, "title": "Not allowed",
             "detail": "This account is not staff, so Django admin is closed to it."},
            status=403,
        )
    return redirect_to_login(target, settings.LOGIN_URL)
