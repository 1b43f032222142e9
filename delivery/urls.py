from django.urls import path

from delivery import views

app_name = "delivery"

urlpatterns = [
    path("<slug:org>/sent/", views.sent_list, name="sent"),
    path("<slug:org>/sent/<str:message_id>/", views.sent_detail, name="sent_message"),
    path("<slug:org>/suppressions/", views.suppressions, name="suppressions"),
    path("<slug:org>/suppressions/<str:value>/lift/", views.suppression_remove_page,
         name="suppression_remove"),
    path("<slug:org>/webhooks/", views.webhooks, name="webhooks"),
    path("<slug:org>/webhooks/<int:webhook_id>/remove/", views.webhook_delete_page,
         name="webhook_delete"),
    path("<slug:org>/webhook-deliveries/<int:delivery_id>/replay/", views.webhook_replay_page,
         name="webhook_replay"),
]
