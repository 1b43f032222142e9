from django.contrib import admin

from mailboxes.models import (
    Alias,
    AppPassword,
    Domain,
    Mailbox,
    MailboxImport,
    MailNode,
    NodeChange,
)
from mailhost.admin import OneLineFieldsAdmin


@admin.register(MailNode)
class MailNodeAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "state_dir",
        "desired_revision",
        "applied_revision",
        "applied_at",
        "last_error",
    ]
    readonly_fields = [
        "desired_revision",
        "applied_revision",
        "applied_at",
        "last_error",
        "last_drift",
        "last_drift_at",
    ]


@admin.register(Domain)
class DomainAdmin(admin.ModelAdmin):
    list_display = ["name", "organisation", "status", "node", "max_mailboxes", "created_at"]
    list_filter = ["status", "node", "organisation"]
    search_fields = ["name"]
    list_select_related = ["organisation", "node"]
    readonly_fields = ["revision"]


class AppPasswordInline(admin.TabularInline):
    model = AppPassword
    extra = 0
    fields = ["name", "created_at", "last_used_at", "revoked_at"]
    readonly_fields = ["name", "created_at", "last_used_at"]
    can_delete = False


@admin.register(Mailbox)
class MailboxAdmin(OneLineFieldsAdmin):
    one_line_fields = ("display_name",)
    inlines = [AppPasswordInline]
    list_display = ["__str__", "display_name", "status", "quota_mb", "deleted_at", "created_at"]
    list_filter = ["status", "domain__organisation"]
    search_fields = ["local_part", "domain__name", "display_name"]
    list_select_related = ["domain"]
    readonly_fields = ["home_id", "password_hash", "revision"]
    raw_id_fields = ["domain"]
    show_full_result_count = False  # no COUNT(*) over every mailbox on each page


@admin.register(Alias)
class AliasAdmin(admin.ModelAdmin):
    list_display = ["__str__", "destinations", "active"]
    list_filter = ["active", "domain__organisation"]
    search_fields = ["local_part", "domain__name"]
    list_select_related = ["domain"]
    raw_id_fields = ["domain"]


@admin.register(NodeChange)
class NodeChangeAdmin(admin.ModelAdmin):
    """The pending change log: rows disappear once their node has applied them."""

    list_display = ["revision", "node", "kind", "object_id"]
    list_filter = ["node", "kind"]
    list_select_related = ["node"]

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(AppPassword)
class AppPasswordAdmin(OneLineFieldsAdmin):
    one_line_fields = ("name",)
    list_display = ["name", "mailbox", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["mailbox__domain__organisation"]
    search_fields = ["name", "mailbox__local_part", "mailbox__domain__name"]
    list_select_related = ["mailbox__domain"]
    raw_id_fields = ["mailbox"]
    exclude = ["password_hash"]


@admin.register(MailboxImport)
class MailboxImportAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "organisation",
        "filename",
        "status",
        "processed",
        "total",
        "created",
        "failed",
        "created_at",
        "finished_at",
    ]
    list_filter = ["status", "organisation"]
    list_select_related = ["organisation"]
    exclude = ["source_encrypted", "generated_encrypted"]  # may hold passwords
    readonly_fields = ["errors"]
