from django.http import HttpRequest

from identity import mtasts
from identity.views import mta_sts_policy, policy_domain


class MtaStsPolicyMiddleware:
    """Answer https://mta-sts.<hosted domain>/.well-known/mta-sts.txt before host validation.

    Those hosts are not in ALLOWED_HOSTS (there is one per hosted domain), so without this
    Django would refuse the request with 400 before any view ran. Only this one path on such a
    host is answered here; everything else goes through the normal stack.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest):
        if request.path_info == mtasts.POLICY_PATH and policy_domain(
            request.META.get("HTTP_HOST", "")
        ):
            return mta_sts_policy(request)
        return self.get_response(request)
