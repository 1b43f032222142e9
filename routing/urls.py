from django.urls import path

from routing import views

app_name = "routing"

urlpatterns = [
    path("tls/", views.tls_page, name="tls"),
    path("tls/<str:domain>/remove/", views.tls_policy_remove, name="tls_remove"),
]
