from django.urls import path

from identity import inbound_views, posture_views
from mailboxes import views

app_name = "mailboxes"

urlpatterns = [
    path("", views.home, name="home"),
    path("<slug:org>/", views.dashboard, name="dashboard"),
    path("<slug:org>/search/", views.search, name="search"),
    path("<slug:org>/domains/", views.domain_list, name="domains"),
    path("<slug:org>/domains/add/", views.domain_add, name="domain_add"),
    path("<slug:org>/domains/<str:name>/", views.domain_detail, name="domain"),
    path("<slug:org>/domains/<str:name>/edit/", views.domain_edit, name="domain_edit"),
    path("<slug:org>/domains/<str:name>/delete/", views.domain_delete, name="domain_delete"),
    path("<slug:org>/domains/<str:name>/verify/", views.domain_verify, name="domain_verify"),
    path("<slug:org>/domains/<str:name>/move/", views.domain_move, name="domain_move"),
    path(
        "<slug:org>/domains/<str:name>/verify/staff/",
        views.domain_mark_verified,
        name="domain_mark_verified",
    ),
    path("<slug:org>/domains/<str:name>/dns/", posture_views.domain_dns, name="domain_dns"),
    path("<slug:org>/domains/<str:name>/dns/zone/", posture_views.domain_zone, name="domain_zone"),
    path(
        "<slug:org>/domains/<str:name>/dns/check/", posture_views.domain_check, name="domain_check"
    ),
    path(
        "<slug:org>/domains/<str:name>/dkim/rotate/", posture_views.dkim_rotate, name="dkim_rotate"
    ),
    path("<slug:org>/domains/<str:name>/dmarc/", posture_views.dmarc_stage, name="dmarc"),
    path("<slug:org>/domains/<str:name>/bimi/", posture_views.bimi, name="bimi"),
    path("<slug:org>/domains/<str:name>/mta-sts/", posture_views.mtasts, name="mtasts"),
    path("<slug:org>/domains/<str:name>/inbound/", inbound_views.inbound, name="inbound"),
    path("<slug:org>/domains/<str:name>/inbound/senders/", inbound_views.inbound_sender_add,
         name="inbound_sender_add"),
    path("<slug:org>/domains/<str:name>/inbound/senders/<int:pk>/remove/",
         inbound_views.inbound_sender_remove, name="inbound_sender_remove"),
    path("<slug:org>/mailboxes/", views.mailbox_list, name="mailboxes"),
    path("<slug:org>/mailboxes/new/", views.mailbox_create, name="mailbox_new"),
    path("<slug:org>/mailboxes/export.csv", views.mailbox_export, name="export"),
    path("<slug:org>/mailboxes/import/", views.mailbox_import, name="import_new"),
    path("<slug:org>/mailboxes/import/<int:pk>/", views.mailbox_import_detail, name="import"),
    path(
        "<slug:org>/mailboxes/import/<int:pk>/passwords.csv",
        views.mailbox_import_passwords,
        name="import_passwords",
    ),
    path("<slug:org>/mailboxes/<str:address>/", views.mailbox_detail, name="mailbox"),
    path(
        "<slug:org>/mailboxes/<str:address>/password/",
        views.mailbox_password,
        name="mailbox_password",
    ),
    path("<slug:org>/mailboxes/<str:address>/status/", views.mailbox_status, name="mailbox_status"),
    path("<slug:org>/mailboxes/<str:address>/delete/", views.mailbox_delete, name="mailbox_delete"),
    path(
        "<slug:org>/mailboxes/<str:address>/restore/", views.mailbox_restore, name="mailbox_restore"
    ),
    path(
        "<slug:org>/mailboxes/<str:address>/app-passwords/<int:pk>/revoke/",
        views.app_password_revoke,
        name="app_password_revoke",
    ),
    path("<slug:org>/aliases/", views.alias_list, name="aliases"),
    path("<slug:org>/aliases/new/", views.alias_create, name="alias_new"),
    path("<slug:org>/aliases/<str:address>/", views.alias_edit, name="alias"),
    path("<slug:org>/aliases/<str:address>/delete/", views.alias_delete, name="alias_delete"),
]
