from django.urls import path

from reports import views

app_name = "reports"

urlpatterns = [
    path("<slug:org>/reports/", views.submissions, name="submissions"),
    path("<slug:org>/domains/<str:name>/reports/", views.domain_reports, name="domain"),
]
