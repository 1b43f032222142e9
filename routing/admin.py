from django.contrib import admin, messages

from mailhost.http import client_ip
from routing.models import ArcKey, SrsSecret, TlsReport
from routing.srs import srs_rotate
from tenants.access import Actor


@admin.register(SrsSecret)
class SrsSecretAdmin(admin.ModelAdmin):
    """Secrets are never shown; staff rotate them with the action (or manage.py rotatesrs)."""

    list_display = ("created_at", "signing", "superseded_at")
    fields = ("created_at", "signing", "superseded_at")
    readonly_fields = fields
    actions = ["rotate"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.action(description="Rotate the SRS secret (the old one verifies for the grace period)")
    def rotate(self, request, queryset):
        srs_rotate(actor=Actor(user=request.user, ip=client_ip(request)))
        self.message_user(request, "A new SRS secret signs from the next reconcile on.",
                          messages.SUCCESS)


@admin.register(ArcKey)
class ArcKeyAdmin(admin.ModelAdmin):
    list_display = ("domain", "selector", "active", "created_at")
    fields = ("domain", "selector", "public_key", "active", "created_at")
    readonly_fields = fields

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(TlsReport)
class TlsReportAdmin(admin.ModelAdmin):
    """Outgoing TLS reports as the daily run left them; the run alone writes them."""

    list_display = ("day", "domain", "rua", "state", "attempts", "sent_at")
    list_filter = ("state",)
    search_fields = ("domain",)
    readonly_fields = ("domain", "day", "rua", "report_id", "state", "attempts",
                       "failure_sessions", "success_sessions", "last_error", "sent_at",
                       "updated_at")
    fields = readonly_fields

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
