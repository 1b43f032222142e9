"""Operator logins count towards bans whichever view handles them (allauth's, Django admin's):
both authenticate through django.contrib.auth, which sends `user_login_failed`."""

from django.contrib.auth.signals import user_login_failed
from django.dispatch import receiver

from bans.node import login_failed
from mailhost.http import client_ip


@receiver(user_login_failed, dispatch_uid="bans.operator_login_failed")
def operator_login_failed(sender, credentials, request=None, **kwargs) -> None:
    if request is None:
        return  # not a web login (a management command, a test calling authenticate())
    account = next(
        (str(credentials[k]) for k in ("email", "username", "login") if credentials.get(k)), ""
    )
    login_failed(client_ip(request), account, "operator-login")
