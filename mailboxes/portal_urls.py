from django.urls import path

from mailboxes import portal_views as views
from webmail import views as webmail_views

app_name = "mailbox"

urlpatterns = [
    path("", views.home, name="home"),
    path("login/", views.login, name="login"),
    path("logout/", views.logout, name="logout"),
    path("webmail/", webmail_views.open_webmail, name="webmail"),
    path("setup/", views.setup, name="setup"),
    path("setup/apple.mobileconfig", views.mobileconfig, name="mobileconfig"),
    path("password/", views.password, name="password"),
    path("forwarding/", views.forwarding, name="forwarding"),
    path("vacation/", views.vacation, name="vacation"),
    path("app-passwords/", views.app_passwords, name="app_passwords"),
    path("app-passwords/<int:pk>/revoke/", views.app_password_revoke, name="app_password_revoke"),
]
