from django.contrib import admin

from identity.models import DkimKey


@admin.register(DkimKey)
class DkimKeyAdmin(admin.ModelAdmin):
    list_display = ["selector", "domain", "algorithm", "state", "created_at", "activated_at"]
    list_filter = ["state", "algorithm"]
    search_fields = ["selector", "domain__name"]
    list_select_related = ["domain"]
    exclude = ["private_key_encrypted"]  # never shown, even encrypted
    readonly_fields = ["public_key"]
