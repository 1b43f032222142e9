from django.urls import path

from tenants import views

app_name = "tenants"

urlpatterns = [
    path("switch/", views.switch, name="switch"),
    path("invitations/<str:token>/", views.accept_invitation, name="accept"),
    path("organisations/new/", views.organisation_new, name="organisation_new"),
    path("<slug:org>/suspend/", views.organisation_suspend, name="suspend"),
    path("<slug:org>/unsuspend/", views.organisation_unsuspend, name="unsuspend"),
    path("<slug:org>/encryption/", views.organisation_encryption, name="encryption"),
    path("<slug:org>/members/", views.members, name="members"),
    path("<slug:org>/members/<int:pk>/role/", views.member_role, name="member_role"),
    path("<slug:org>/members/<int:pk>/remove/", views.member_remove, name="member_remove"),
    path(
        "<slug:org>/invitations/<int:pk>/revoke/", views.invitation_revoke, name="invitation_revoke"
    ),
    path("<slug:org>/tokens/", views.tokens, name="tokens"),
    path("<slug:org>/tokens/<int:pk>/revoke/", views.token_revoke, name="token_revoke"),
    path("<slug:org>/audit/", views.audit, name="audit"),
]
