from django.contrib import admin, messages

from mailboxes.models import (
    Alias,
    AppPassword,
    Domain,
    Mailbox,
    MailboxImport,
)
from mailboxes.services import domain_mark_verified, domain_revoke_verification, domain_update
from mailhost.admin import OneLineFieldsAdmin
from mailhost.errors import DomainError
from mailhost.http import client_ip
from tenants.access import Actor


@admin.register(Domain)
class DomainAdmin(admin.ModelAdmin):
    list_display = [
        "name", "organisation", "status", "verified_at", "verification_method", "node",
        "max_mailboxes", "created_at",
    ]
    list_filter = ["status", "verification_method", "node", "organisation"]
    search_fields = ["name"]
    list_select_related = ["organisation", "node"]
    # Ownership changes go through the services (audited, and they reach the node): actions.
    readonly_fields = ["revision", "verified_at", "verification_method", "verification_token"]
    actions = ["mark_verified", "revoke_verification"]

    def get_readonly_fields(self, request, obj=None):
        # A claim's name is what was verified: renaming one would carry the proof elsewhere.
        return [*self.readonly_fields, "name"] if obj is not None else self.readonly_fields

    def save_model(self, request, obj, form, change):
        """Status and limits go through the service, so the change is audited with the staff
        user and reaches the node like any other."""
        managed = {"status", "max_mailboxes", "default_quota_mb"}
        if not change or not set(form.changed_data) & managed:
            return super().save_model(request, obj, form, change)
        others = set(form.changed_data) - managed
        if others:
            Domain.objects.filter(pk=obj.pk).update(**{f: getattr(obj, f) for f in others})
        domain_update(
            actor=Actor(user=request.user, ip=client_ip(request)),
            domain=Domain.objects.get(pk=obj.pk),
            status=obj.status,
            max_mailboxes=obj.max_mailboxes,
            default_quota_mb=obj.default_quota_mb,
        )

    def _each(self, request, queryset, service, **kwargs) -> None:
        actor = Actor(user=request.user, ip=client_ip(request))
        for domain in queryset.select_related("organisation"):
            try:
                service(actor=actor, domain=domain, **kwargs)
            except DomainError as exc:
                self.message_user(request, f"{domain.name}: {exc.detail}", messages.ERROR)
            else:
                self.message_user(request, f"{domain.name}: done.", messages.SUCCESS)

    @admin.action(description="Mark ownership verified (goes live; audited)")
    def mark_verified(self, request, queryset):
        self._each(request, queryset, domain_mark_verified, method="staff")

    @admin.action(description="Revoke ownership verification (takes it off the mail node)")
    def revoke_verification(self, request, queryset):
        self._each(request, queryset, domain_revoke_verification)


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
