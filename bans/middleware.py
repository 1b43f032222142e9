"""Refuse the login pages to a banned address, with a page that says why and until when."""

import datetime as dt

from django.shortcuts import render

from bans.node import banned
from mailhost.http import client_ip

# Views by their resolved URL name: the operator login (allauth), Django admin's login and the
# mailbox holders' login. Another route to a login is still covered by bans.auth.BanBackend.
LOGIN_VIEWS = frozenset({"account_login", "admin:login", "mailbox:login"})


class BanGateMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_view(self, request, view_func, view_args, view_kwargs):
        match = request.resolver_match
        if match is None or match.view_name not in LOGIN_VIEWS:
            return None
        ban = banned(client_ip(request))
        if ban is None:
            return None
        until = dt.datetime.fromtimestamp(ban.until, dt.UTC)
        return render(request, "bans/refused.html", {"until": until}, status=403)
