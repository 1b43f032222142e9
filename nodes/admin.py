from django.contrib import admin

from nodes.models import MailNode, NodeChange


@admin.register(MailNode)
class MailNodeAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "state_dir",
        "smtp_host",
        "smtp_port",
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
        # Set with `manage.py nodeaddress`: the other nodes' transports follow it.
        "smtp_host",
        "smtp_port",
    ]


@admin.register(NodeChange)
class NodeChangeAdmin(admin.ModelAdmin):
    """The pending change log: rows disappear once their node has applied them."""

    list_display = ["revision", "node", "kind", "object_id"]
    list_filter = ["node", "kind"]
    list_select_related = ["node"]

    def has_change_permission(self, request, obj=None) -> bool:
        return False
