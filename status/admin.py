from django.contrib import admin

from status.models import HousekeepingRun, StatusAlert, StatusCheck


@admin.register(StatusCheck)
class StatusCheckAdmin(admin.ModelAdmin):
    list_display = ["key", "group", "state", "evidence", "changed_at", "checked_at"]
    list_filter = ["state", "group"]
    search_fields = ["key", "evidence"]


@admin.register(StatusAlert)
class StatusAlertAdmin(admin.ModelAdmin):
    list_display = ["created_at", "key", "previous", "state", "evidence"]
    list_filter = ["state"]
    search_fields = ["key"]


@admin.register(HousekeepingRun)
class HousekeepingRunAdmin(admin.ModelAdmin):
    list_display = ["started_at", "job", "ok", "result", "error"]
    list_filter = ["ok", "job"]
