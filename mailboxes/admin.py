from django.contrib import admin

from mailboxes.models import Alias, Domain, Mailbox, MailNode


@admin.register(MailNode)
class MailNodeAdmin(admin.ModelAdmin):
    list_display = ["name", "state_dir", "desired_revision", "applied_revision", "applied_at",
                    "last_error"]
    readonly_fields = ["desired_revision", "applied_revision", "applied_at", "last_error",
                       "last_drift", "last_drift_at"]


@admin.register(Domain)
class DomainAdmin(admin.ModelAdmin):
    list_display = ["name", "organisation", "status", "node", "max_mailboxes", "created_at"]
    list_filter = ["status", "node", "organisation"]
    search_fields = ["name"]
    list_select_related = ["organisation", "node"]
    readonly_fields = ["revision"]


@admin.register(Mailbox)
class MailboxAdmin(admin.ModelAdmin):
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
