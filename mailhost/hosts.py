"""Which host names the portal answers to, and for what.

- Its own names: ALLOWED_HOSTS, to which settings always add the mail host and the portal URL's
  host (the autodiscover SRV target, the BIMI logo URLs). Everything is served there.
- The service hosts of every hosted domain, `mta-sts.<d>`, `autoconfig.<d>` and
  `autodiscover.<d>`: one per domain, checked against the database per request
  (`mailboxes.selectors.hosted_domain_for_host`), never a wildcard in ALLOWED_HOSTS. On those
  only the endpoints a sender or mail client fetches there are answered: the MTA-STS policy,
  autoconfig, autodiscover and the domain's own BIMI logo.
- Anything else, including every other path on a service host (pages, admin, API, static
  files), is refused by Django's host validation with 400.
"""

from django.conf import settings
from django.http import HttpRequest
from django.http.request import split_domain_port, validate_host

from identity import mtasts
from identity.views import bimi_logo, mta_sts_policy
from mailboxes import autoconfig
from mailboxes.selectors import ServiceHost, hosted_domain_for_host


def _route(service: ServiceHost, path: str):
    """The view for `path` on this service host, or None: the one door per label."""
    if service.label == "mta-sts" and path == mtasts.POLICY_PATH:
        return mta_sts_policy
    if service.label == "autoconfig" and path in autoconfig.THUNDERBIRD_PATHS:
        return lambda request: autoconfig.thunderbird(request, host_domain=service.domain)
    if service.label == "autodiscover" and path in autoconfig.AUTODISCOVER_PATHS:
        return autoconfig.autodiscover
    if path == f"/bimi/{service.domain}/logo.svg":
        return lambda request: bimi_logo(request, name=service.domain)
    return None


def _host_name(request: HttpRequest) -> str:
    """The requested host name, lower case, without the port ('' if malformed)."""
    meta = request.META
    if settings.USE_X_FORWARDED_HOST and "HTTP_X_FORWARDED_HOST" in meta:
        raw = meta["HTTP_X_FORWARDED_HOST"]
    else:
        raw = meta.get("HTTP_HOST") or meta.get("SERVER_NAME", "")
    name, _port = split_domain_port(raw)
    return name


class HostRoutingMiddleware:
    """Serve hosted domains' service hosts; pass everything else on unchanged.

    Placed before anything that validates the host (CommonMiddleware, CSRF) or serves files
    (WhiteNoise), and after the request id and SecurityMiddleware, whose headers these answers
    carry too.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest):
        name = _host_name(request)
        if not (name and validate_host(name, settings.ALLOWED_HOSTS)):
            service = hosted_domain_for_host(name) if name else None
            view = _route(service, request.path_info) if service is not None else None
            if view is not None:
                return view(request)
            # Django's own refusal (DisallowedHost: logged, 400), here, before WhiteNoise would
            # serve static files to any name at all.
            request.get_host()
        return self.get_response(request)
