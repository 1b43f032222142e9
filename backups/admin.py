from django.contrib import admin

from backups.models import BackupKey, BackupRun


@admin.register(BackupRun)
class BackupRunAdmin(admin.ModelAdmin):
    list_display = ["started_at", "kind", "scope", "target", "status", "messages",
                    "objects_uploaded", "bytes", "finished_at"]
    list_filter = ["kind", "status"]
    search_fields = ["scope", "snapshot", "error"]
    readonly_fields = [f.name for f in BackupRun._meta.fields]


@admin.register(BackupKey)
class BackupKeyAdmin(admin.ModelAdmin):
    """Listed so staff see which organisations have a key; the wrapped key is never shown."""

    list_display = ["id", "organisation", "install", "created_at"]
    exclude = ["wrapped"]
    readonly_fields = ["id", "organisation", "install", "created_at"]

    def has_add_permission(self, request):
        return False
