"""Staff pages of the queue, at /mail-admin/queue/ (before the organisations' paths)."""

from django.urls import path

from routing import views

app_name = "routing_staff"

urlpatterns = [
    path("", views.staff_queue, name="queue"),
    path("<str:queue_id>/<str:action>/", views.staff_queue_action_page, name="queue_action"),
]
