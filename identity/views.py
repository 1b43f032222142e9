"""The two public files of a domain's posture: its MTA-STS policy and its BIMI logo.

Both are fetched anonymously (by sending MTAs and by mail clients), so they take no login and
reveal nothing beyond what the domain publishes on purpose.
"""

from django.http import Http404, HttpRequest, HttpResponse
from django.utils.cache import patch_cache_control
from django.views.decorators.http import require_safe

from identity import mtasts
from identity.selectors import bimi_logo_public, mtasts_policy_public
from mailhost.names import InvalidName, normalise_domain


def policy_domain(raw_host: str) -> str | None:
    """`mta-sts.example.com[:port]` → `example.com`; None for any other host."""
    host = raw_host.strip().lower()
    if host.startswith("["):  # an IPv6 literal is never mta-sts.<domain>
        return None
    host = host.rsplit(":", 1)[0] if ":" in host else host
    if not host.startswith(mtasts.POLICY_HOST_PREFIX):
        return None
    try:
        return normalise_domain(host[len(mtasts.POLICY_HOST_PREFIX):])
    except InvalidName:
        return None


@require_safe
def mta_sts_policy(request: HttpRequest) -> HttpResponse:
    """RFC 8461 3.2, served for the Host `mta-sts.<domain>` as text/plain."""
    # The Host header is read raw on purpose: every hosted domain has its own mta-sts host,
    # which cannot all be in ALLOWED_HOSTS; it is only used to look up a hosted domain.
    domain = policy_domain(request.META.get("HTTP_HOST", ""))
    text = mtasts_policy_public(domain) if domain else None
    if text is None:
        raise Http404("No MTA-STS policy for this host.")
    response = HttpResponse(text, content_type="text/plain")
    patch_cache_control(response, public=True, max_age=300)
    return response


@require_safe
def bimi_logo(request: HttpRequest, name: str) -> HttpResponse:
    logo = bimi_logo_public(name)
    if logo is None:
        raise Http404("No BIMI logo for this domain.")
    data, sha256 = logo
    etag = f'"{sha256}"'
    if request.headers.get("If-None-Match") == etag:
        response = HttpResponse(status=304)
    else:
        response = HttpResponse(data, content_type="image/svg+xml")
    response["ETag"] = etag
    # The logo is re-serialised from an allow-listed tree (no script, no CSS, nothing
    # external); even so it must not run as a page on the portal's origin, nor load anything.
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    response["X-Content-Type-Options"] = "nosniff"
    patch_cache_control(response, public=True, max_age=3600)
    return response
