from django.contrib import admin

from mailhost.admin import OneLineFieldsAdmin
from tenants.models import (
    ApiToken,
    AuditEvent,
    IdempotencyRecord,
    Invitation,
    Membership,
    Organisation,
)


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Organisation)
class OrganisationAdmin(OneLineFieldsAdmin):
    one_line_fields = ("name",)
    list_display = ["name", "slug", "created_at"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [MembershipInline]


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


@admin.register(ApiToken)
class ApiTokenAdmin(OneLineFieldsAdmin):
    one_line_fields = ("name",)
    list_display = [
        "name",
        "hint",
        "organisation",
        "read_only",
        "expires_at",
        "revoked_at",
        "last_used_at",
    ]
    list_filter = ["read_only", "organisation"]
    search_fields = ["name", "hint"]
    list_select_related = ["organisation"]
    readonly_fields = ["token_hash", "hint", "last_used_at", "created_at"]


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
