"""Who is the client? Forwarded headers are believed only from the operator's own proxies."""

from mailhost.http import FORWARDED_HEADERS, is_trusted_proxy


class TrustedProxyMiddleware:
    """Drop X-Forwarded-* from any peer that is not a trusted proxy (MAILHOST_TRUSTED_PROXIES).

    Django's SECURE_PROXY_SSL_HEADER believes X-Forwarded-Proto from whoever sends it; without
    this, a client talking to the portal directly could claim HTTPS, or an address of its
    choosing for the audit log and the rate limits.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if not is_trusted_proxy(request.META.get("REMOTE_ADDR")):
            for header in FORWARDED_HEADERS:
                request.META.pop(header, None)
        return self.get_response(request)
