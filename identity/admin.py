from django.contrib import admin

from identity.models import DkimKey, DnsCheck, DnsCheckHistory, DomainPosture


@admin.register(DkimKey)
class DkimKeyAdmin(admin.ModelAdmin):
    list_display = ["selector", "domain", "algorithm", "state", "created_at", "activated_at"]
    list_filter = ["state", "algorithm"]
    search_fields = ["selector", "domain__name"]
    list_select_related = ["domain"]
    exclude = ["private_key_encrypted"]  # never shown, even encrypted
    readonly_fields = ["public_key"]


@admin.register(DomainPosture)
class DomainPostureAdmin(admin.ModelAdmin):
    list_display = ["domain", "dmarc_policy", "dmarc_pct", "mtasts_mode", "auto_publish",
                    "last_checked_at", "next_check_at"]
    list_filter = ["dmarc_policy", "mtasts_mode", "auto_publish"]
    search_fields = ["domain__name"]
    list_select_related = ["domain"]
    # Secrets and the logo bytes are changed through the services (validated, audited).
    exclude = ["tsig_secret_encrypted", "bimi_svg"]
    readonly_fields = ["bimi_sha256", "bimi_uploaded_at", "last_published_at",
                       "last_publish_error", "last_checked_at"]


@admin.register(DnsCheck)
class DnsCheckAdmin(admin.ModelAdmin):
    list_display = ["domain", "key", "rtype", "status", "checked_at", "changed_at"]
    list_filter = ["status", "rtype"]
    search_fields = ["domain__name", "key", "name"]
    list_select_related = ["domain"]


@admin.register(DnsCheckHistory)
class DnsCheckHistoryAdmin(admin.ModelAdmin):
    list_display = ["checked_at", "domain", "key", "previous_status", "status"]
    list_filter = ["status"]
    search_fields = ["domain__name", "key"]
    list_select_related = ["domain"]
