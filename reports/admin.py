from django.contrib import admin

from reports.models import AggregateReport, FailureReport, ReportSubmission, TlsReport


@admin.register(ReportSubmission)
class ReportSubmissionAdmin(admin.ModelAdmin):
    list_display = ["received_at", "source", "kind", "outcome", "domain", "organisation",
                    "reporter", "reason"]
    list_filter = ["outcome", "kind", "source"]
    search_fields = ["domain__name", "reporter", "report_id", "reason"]
    list_select_related = ["domain", "organisation"]


@admin.register(AggregateReport)
class AggregateReportAdmin(admin.ModelAdmin):
    list_display = ["domain", "org_name", "report_id", "begin", "end", "messages"]
    search_fields = ["domain__name", "org_name", "report_id"]
    list_select_related = ["domain"]


@admin.register(TlsReport)
class TlsReportAdmin(admin.ModelAdmin):
    list_display = ["domain", "org_name", "report_id", "end", "successes", "failures"]
    search_fields = ["domain__name", "org_name", "report_id"]
    list_select_related = ["domain"]


@admin.register(FailureReport)
class FailureReportAdmin(admin.ModelAdmin):
    list_display = ["domain", "received_at", "auth_failure", "source_ip", "expires_at"]
    search_fields = ["domain__name"]
    list_select_related = ["domain"]
