from django.urls import path

from bans import views

app_name = "bans"

urlpatterns = [
    path("", views.bans, name="list"),
    path("<str:ip>/lift/", views.ban_lift_page, name="lift"),
]
