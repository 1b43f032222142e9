import datetime as dt

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.template.response import TemplateResponse
from django.utils import timezone

from mailboxes.services import organisation_set_suspended
from mailcrypt.services import organisation_set_encryption
from mailhost.admin import OneLineFieldsAdmin
from mailhost.errors import DomainError
from tenants.access import Actor
from tenants.models import (
    ApiToken,
    AuditEvent,
    IdempotencyRecord,
    Invitation,
    Membership,
    Organisation,
)
from tenants.services import api_token_revoke, staff_token_create


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


def _actor(request) -> Actor:
    return Actor(user=request.user, ip=request.META.get("REMOTE_ADDR") or None)


@admin.register(Organisation)
class OrganisationAdmin(OneLineFieldsAdmin):
    one_line_fields = ("name",)
    list_display = ["name", "slug", "created_at", "suspended_at"]
    list_filter = [("suspended_at", admin.EmptyFieldListFilter)]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    # Suspension reaches the mail node through the service (below), never by editing the row.
    readonly_fields = ["suspended_at"]
    inlines = [MembershipInline]
    actions = ["suspend", "unsuspend", "encrypt_at_rest", "stop_encrypting"]

    @admin.action(description="Suspend the selected organisations (stops their mail)")
    def suspend(self, request, queryset):
        self._set_suspended(request, queryset, True)

    @admin.action(description="Lift the suspension of the selected organisations")
    def unsuspend(self, request, queryset):
        self._set_suspended(request, queryset, False)

    @admin.action(description="Encrypt new mail of the selected organisations at rest")
    def encrypt_at_rest(self, request, queryset):
        self._set_encryption(request, queryset, True)

    @admin.action(description="Stop encrypting new mail (stored mail stays readable)")
    def stop_encrypting(self, request, queryset):
        self._set_encryption(request, queryset, False)

    def _set_encryption(self, request, queryset, enabled: bool) -> None:
        # Through the service: it makes the key, audits, and reaches the nodes.
        for organisation in queryset:
            organisation_set_encryption(
                actor=_actor(request), organisation=organisation, enabled=enabled
            )
        state = "encrypted" if enabled else "stored plain"
        self.message_user(request, f"New mail of {queryset.count()} organisation(s) is {state}.")

    def _set_suspended(self, request, queryset, suspended: bool) -> None:
        for organisation in queryset:
            organisation_set_suspended(
                actor=_actor(request), organisation=organisation, suspended=suspended
            )
        verb = "suspended" if suspended else "no longer suspended"
        self.message_user(request, f"{queryset.count()} organisation(s) {verb}.")


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "organisation", "role", "created_at"]
    list_filter = ["role", "organisation"]
    search_fields = ["user__email", "organisation__name"]
    list_select_related = ["user", "organisation"]
    autocomplete_fields = ["user", "organisation"]


@admin.register(Invitation)
class InvitationAdmin(admin.ModelAdmin):
    list_display = ["email", "organisation", "role", "created_at", "expires_at", "accepted_at"]
    list_filter = ["role", "organisation"]
    search_fields = ["email"]
    list_select_related = ["organisation"]
    readonly_fields = ["token_hash"]


class StaffTokenForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="What uses it, e.g. “onboarding robot”.")
    expires_in_days = forms.IntegerField(
        label="Expires after (days)", required=False, min_value=1, max_value=3650,
        help_text="Empty: never expires.",
    )


@admin.register(ApiToken)
class ApiTokenAdmin(OneLineFieldsAdmin):
    """Tokens are looked at and revoked here. "Add" creates a staff token (organisations'
    tokens are made in /mail-admin/ or the API); every change goes through the services, so
    it is audited."""

    one_line_fields = ("name",)
    list_display = [
        "name",
        "hint",
        "staff",
        "organisation",
        "read_only",
        "expires_at",
        "revoked_at",
        "last_used_at",
    ]
    list_filter = ["staff", "read_only", "organisation"]
    search_fields = ["name", "hint"]
    list_select_related = ["organisation"]
    readonly_fields = ["token_hash", "hint", "last_used_at", "created_at"]
    actions = ["revoke"]

    def has_change_permission(self, request, obj=None) -> bool:
        return False  # an edited row would skip the audit log: revoke instead

    @admin.action(description="Revoke the selected tokens", permissions=["view"])
    def revoke(self, request, queryset):
        for token in queryset.filter(revoked_at=None):
            api_token_revoke(actor=_actor(request), token=token)
        self.message_user(request, "Revoked.")

    def add_view(self, request, form_url="", extra_context=None):
        """Create a staff token and show its secret once."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = StaffTokenForm(request.POST or None)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Create a staff token",
            "form": form,
        }
        if request.method == "POST" and form.is_valid():
            days = form.cleaned_data["expires_in_days"]
            try:
                token, raw = staff_token_create(
                    actor=_actor(request),
                    name=form.cleaned_data["name"],
                    expires_at=timezone.now() + dt.timedelta(days=days) if days else None,
                )
            except DomainError as exc:
                form.add_error(None, exc.detail)
            else:
                context |= {"title": "Staff token created", "token": token, "raw": raw}
                response = TemplateResponse(request, "admin/tenants/staff_token.html", context)
                response["Cache-Control"] = "no-store"
                return response
        return TemplateResponse(request, "admin/tenants/staff_token.html", context)


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = ["created_at", "organisation", "actor_label", "action", "target", "ip"]
    list_filter = ["action", "organisation"]
    search_fields = ["target", "actor_label", "action"]
    list_select_related = ["organisation"]
    date_hierarchy = "created_at"

    def has_change_permission(self, request, obj=None) -> bool:
        return False  # the audit log is append-only

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(IdempotencyRecord)
class IdempotencyRecordAdmin(admin.ModelAdmin):
    """Replayable API responses (kept encrypted for API_IDEMPOTENCY_TTL_HOURS)."""

    list_display = ["key", "scope", "status_code", "created_at"]
    search_fields = ["key", "scope"]
    exclude = ["body_encrypted"]
