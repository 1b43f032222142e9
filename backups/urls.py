"""Staff pages of backups, at /mail-admin/backups/ (before the organisations' paths)."""

from django.urls import path

from backups import views

app_name = "backups"

urlpatterns = [
    path("", views.backups, name="list"),
    path("start/", views.backup_start, name="start"),
]
