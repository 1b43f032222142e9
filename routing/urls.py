from django.urls import path

from routing import views

app_name = "routing"

urlpatterns = [
    path("<slug:org>/relays/", views.relays, name="relays"),
    path("<slug:org>/relays/<int:relay_id>/remove/", views.relay_remove_page,
         name="relay_remove"),
    path("<slug:org>/relays/<int:relay_id>/test/", views.relay_test_page, name="relay_test"),
    path("<slug:org>/queue/", views.queue, name="queue"),
    path("<slug:org>/queue/<str:queue_id>/<str:action>/", views.queue_action_page,
         name="queue_action"),
    # Staff: install-wide ("outbound" is a reserved organisation slug).
    path("outbound/tls/", views.tls_page, name="tls"),
    path("outbound/tls/<str:domain>/remove/", views.tls_policy_remove, name="tls_remove"),
]
