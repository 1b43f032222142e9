from django.urls import path

from identity import views

app_name = "identity"

urlpatterns = [
    path(".well-known/mta-sts.txt", views.mta_sts_policy, name="mta-sts-policy"),
    path("bimi/<str:name>/logo.svg", views.bimi_logo, name="bimi-logo"),
]
