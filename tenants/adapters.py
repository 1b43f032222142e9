from allauth.account.adapter import DefaultAccountAdapter
from django.conf import settings

from mailhost.http import client_ip


class AccountAdapter(DefaultAccountAdapter):
    """Operators are invited or created by staff; open sign-up is off unless configured."""

    def is_open_for_signup(self, request) -> bool:
        return settings.ACCOUNT_ALLOW_SIGNUPS

    def get_client_ip(self, request) -> str:
        # The same address the audit log and the other rate limits use: X-Forwarded-For only
        # from the operator's trusted proxies (MAILHOST_TRUSTED_PROXIES).
        return client_ip(request) or super().get_client_ip(request)
