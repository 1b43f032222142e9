"""Banned addresses cannot authenticate as operators, through any login view.

First in AUTHENTICATION_BACKENDS: raising PermissionDenied stops django.contrib.auth from
trying the other backends, so even the right password from a banned address is refused.
BanGateMiddleware refuses the login pages themselves with a clear message; this backend holds
for any other view that calls authenticate().
"""

from django.core.exceptions import PermissionDenied

from bans.node import banned
from mailhost.pages import client_ip


class BanBackend:
    def authenticate(self, request, **credentials):
        if request is not None and banned(client_ip(request)) is not None:
            raise PermissionDenied("Too many failed logins from this address.")
        return None

    def get_user(self, user_id):
        return None
