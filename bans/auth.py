"""Banned addresses cannot authenticate as operators, through any login view.

First in AUTHENTICATION_BACKENDS: raising PermissionDenied stops django.contrib.auth from
trying the other backends, so even the right password from a banned address is refused.
BanGateMiddleware refuses the login pages themselves with a clear message; this backend holds
for any other view that calls authenticate().
"""

from django.contrib.auth.backends import BaseBackend, ModelBackend
from django.core.exceptions import PermissionDenied

from bans.node import banned
from mailhost.http import client_ip


class BanBackend(BaseBackend):
    def authenticate(self, request, **credentials):
        if request is not None and banned(client_ip(request)) is not None:
            raise PermissionDenied("Too many failed logins from this address.")
        return None

    def get_user(self, user_id):
        # Being first, this backend is the one Client.force_login() and the like record in
        # the session: it must load users as the model backend does.
        return ModelBackend().get_user(user_id)
