from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from delivery.graphql import graphql_view
from mailboxes import autoconfig
from mailhost.admin import admin_login
from mailhost.api import api
from status.metrics import metrics

urlpatterns = [
    path("", RedirectView.as_view(url="/mail-admin/", permanent=False)),
    # Staff sign in through allauth (TOTP, rate limits), never through admin's password form.
    path("admin/login/", admin_login),
    path("admin/", admin.site.urls),
    path("accounts/", include("allauth.urls")),
    path("api/v1/", api.urls),
    path("graphql", graphql_view),  # the send API's GraphQL door (delivery/graphql.py)
    path("metrics", metrics, name="metrics"),
    path("mail-admin/bans/", include("bans.urls")),  # before "<org>/" paths
    path("mail-admin/status/", include("status.urls")),
    path("mail-admin/backups/", include("backups.urls")),  # staff
    path("mail-admin/queue/", include("routing.staff_urls")),  # staff: every node's queue
    # Pages: operators (tenants' paths first: "switch/" is not an organisation) and mailboxes.
    path("mail-admin/", include("tenants.urls")),
    path("mail-admin/", include("mailboxes.urls")),
    path("mail-admin/", include("delivery.urls")),
    path("mail-admin/", include("reports.urls")),
    path("mail-admin/", include("routing.urls")),
    path("mailbox/", include("mailboxes.portal_urls")),
    # Mail client self-configuration (also answered on autoconfig.<domain> by middleware).
    path(".well-known/autoconfig/mail/config-v1.1.xml", autoconfig.thunderbird),
    path("mail/config-v1.1.xml", autoconfig.thunderbird, name="autoconfig"),
    path("autodiscover/autodiscover.xml", autoconfig.autodiscover, name="autodiscover"),
    path("Autodiscover/Autodiscover.xml", autoconfig.autodiscover),
    # DNS posture's public files: MTA-STS policy (by Host) and BIMI logos.
    path("", include("identity.urls")),
]
