"""The provisioning API at /api/v1/: authentication, limits, idempotency, errors, routers.

Routers live in their apps (`<app>/api.py`) and call the same services and selectors as the
pages. Authentication puts a `tenants.access.Actor` in `request.auth`; routes raise
`mailhost.errors`, and the handlers here turn every failure into JSON
`{code, detail, field?}` with a real status code, never a stack trace.
"""

import datetime as dt
import io
import logging
import threading
import time
from functools import wraps

import redis
from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db import DataError, IntegrityError, InterfaceError, OperationalError
from django.http import Http404, HttpRequest, HttpResponse
from django.http.multipartparser import MultiPartParserError
from ninja import Field, NinjaAPI, Router, Schema
from ninja.errors import AuthenticationError, HttpError, Throttled, ValidationError
from ninja.responses import Status
from ninja.security import APIKeyCookie, HttpBearer
from ninja.throttling import BaseThrottle
from ninja.utils import check_csrf

from mailhost import health as health_checks
from mailhost.errors import DomainError, Forbidden
from mailhost.http import client_ip
from mailhost.redis import get_redis
from tenants import idempotency
from tenants.access import Actor
from tenants.services import api_token_admit, api_token_authenticate

logger = logging.getLogger(__name__)

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})


# --- authentication ------------------------------------------------------------------------


class TokenAuth(HttpBearer):
    """`Authorization: Bearer mh_…`: an organisation's API token.

    A staff token is refused here with 403 (tenants.services.api_token_admit): it opens the
    staff API only, so it can never act as a tenant's token by accident. So is the token of a
    suspended organisation.
    """

    staff_api = False

    def authenticate(self, request: HttpRequest, token: str) -> Actor | None:
        api_token = api_token_authenticate(token)
        if api_token is None:
            return None
        api_token_admit(api_token, staff_api=self.staff_api)
        return Actor(token=api_token, ip=client_ip(request), staff_api=self.staff_api)


class StaffTokenAuth(TokenAuth):
    """The staff API's door: a staff token only; an organisation's token is a 403."""

    staff_api = True


class SessionActorAuth(APIKeyCookie):
    """A signed-in operator's browser session; unsafe methods need Django's CSRF token.

    CSRF is checked only once the session is known to be signed in, so an anonymous request is
    a 401 rather than a confusing CSRF 403. A request that sends a bearer token is judged by the
    token alone.
    """

    param_name = settings.SESSION_COOKIE_NAME

    def _get_key(self, request: HttpRequest) -> str | None:
        return request.COOKIES.get(self.param_name)

    def authenticate(self, request: HttpRequest, key: str | None) -> Actor | None:
        if not key or "HTTP_AUTHORIZATION" in request.META:
            return None
        user = request.user
        if not user.is_authenticated or not user.is_active:
            return None
        if request.method not in SAFE_METHODS and check_csrf(request) is not None:
            raise Forbidden(
                "CSRF check failed: send the csrftoken cookie's value in an X-CSRFToken header.",
                code="csrf_failed",
            )
        return Actor(user=user, ip=client_ip(request))


class StaffSessionAuth(SessionActorAuth):
    """The staff API for a signed-in staff user; any other signed-in user is a 403."""

    def authenticate(self, request: HttpRequest, key: str | None) -> Actor | None:
        actor = super().authenticate(request, key)
        if actor is not None and not actor.is_global:
            raise Forbidden(
                "The staff API is for staff: sign in as a staff user or send a staff token.",
                code="staff_only",
            )
        return actor


# --- rate limit ----------------------------------------------------------------------------


class RedisRateThrottle(BaseThrottle):
    """API_RATE_LIMIT requests per API_RATE_LIMIT_WINDOW_SECONDS per token or signed-in user.

    A fixed window counted in Redis, shared by every web process. If Redis is unreachable the
    request is let through: a rate limit must not take the API down with it.
    """

    _wait = threading.local()  # ninja asks wait() right after allow_request(), same thread

    def allow_request(self, request: HttpRequest) -> bool:
        self._wait.seconds = None
        limit = settings.API_RATE_LIMIT
        scope = idempotency.actor_scope(getattr(request, "auth", None))
        if limit <= 0 or scope is None:
            return True
        window = settings.API_RATE_LIMIT_WINDOW_SECONDS
        now = time.time()
        bucket = int(now // window)
        key = f"mailhost:api-rate:{scope}:{bucket}"
        try:
            pipe = get_redis().pipeline()
            pipe.incr(key)
            pipe.expire(key, window + 1)
            count = pipe.execute()[0]
        except redis.RedisError as exc:
            logger.warning("API rate limit not applied (Redis: %s)", exc)
            return True
        if count <= limit:
            return True
        self._wait.seconds = max(1.0, (bucket + 1) * window - now)
        return False

    def wait(self) -> float | None:
        return getattr(self._wait, "seconds", None)


# --- the API object ------------------------------------------------------------------------

IDEMPOTENCY_PARAMETER = {
    "in": "header",
    "name": idempotency.HEADER,
    "required": False,
    "description": (
        "Any unique string (a UUID). A retry with the same key and body within 24 hours "
        "gets the first response again instead of acting twice; the same key with a "
        "different body is refused with 422."
    ),
    "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[!-~]+$"},
}


class MailhostAPI(NinjaAPI):
    def get_openapi_schema(self, *, path_prefix=None, path_params=None):
        schema = super().get_openapi_schema(path_prefix=path_prefix, path_params=path_params)
        for operations in schema["paths"].values():
            if "post" in operations:
                operations["post"].setdefault("parameters", []).append(IDEMPOTENCY_PARAMETER)
        return schema


api = MailhostAPI(
    urls_namespace="api",
    version="1",
    title="Mailhost API",
    description=(
        "Provision domains, mailboxes and aliases. Authenticate with "
        "`Authorization: Bearer <token>` (an organisation's API token) or a signed-in "
        "browser session with CSRF. The `/staff/` endpoints take a staff token (manage.py "
        "createapitoken --staff) and only they do. Errors are JSON `{code, detail, field?}`."
    ),
    auth=[TokenAuth(), SessionActorAuth()],
    throttle=[RedisRateThrottle()],
)


def error_response(
    request: HttpRequest,
    status: int,
    code: str,
    detail: str,
    *,
    field: str | None = None,
    errors: list | None = None,
) -> HttpResponse:
    body: dict = {"code": code, "detail": detail}
    if field:
        body["field"] = field
    if errors:
        body["errors"] = errors
    return api.create_response(request, body, status=status)


def _body_limit_response(request: HttpRequest, operation) -> HttpResponse | None:
    """413 before anything reads a body larger than the route allows."""
    view_func = getattr(operation, "view_func", None)
    large = getattr(view_func, "large_body", False)
    limit = settings.API_BULK_MAX_BODY_BYTES if large else settings.API_MAX_BODY_BYTES
    if getattr(view_func, "max_body_bytes", None):  # a route with a cap of its own (a send)
        large, limit = True, view_func.max_body_bytes
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length > limit:
        return error_response(
            request, 413, "payload_too_large", f"The request body is larger than {limit} bytes."
        )
    upload_cap = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    if large and upload_cap is not None and length > upload_cap:
        # Django refuses request.body above its site-wide DATA_UPLOAD_MAX_MEMORY_SIZE; this
        # route has its own larger cap, checked above, so read the body here instead.
        request._body = request.read(limit)
        request._stream = io.BytesIO(request._body)
    return None


def _guard_view(run):
    """View-level wrapper of every operation: body size first, idempotency record last."""

    operation = getattr(run, "__self__", None)  # `run` is the operation's bound method

    @wraps(run)
    def view(request: HttpRequest, *args, **kwargs):
        refused = _body_limit_response(request, operation)
        if refused is not None:
            return refused
        response = run(request, *args, **kwargs)
        record = getattr(request, "_mailhost_idempotency", None)
        if record is not None:
            try:
                idempotency.finish(record, response)
            except Exception:  # the response is good; a retry will find the claim stale
                logger.exception("could not store the response for an Idempotency-Key")
        return response

    return view


def _idempotent_operation(view_func):
    """Operation-level wrapper (after auth and validation): replay or claim an Idempotency-Key."""

    @wraps(view_func)
    def operation(request: HttpRequest, *args, **kwargs):
        key = request.headers.get(idempotency.HEADER)
        scope = idempotency.actor_scope(getattr(request, "auth", None))
        own = getattr(view_func, "own_idempotency", False)  # e.g. a send: see delivery.api
        if request.method != "POST" or key is None or scope is None or own:
            return view_func(request, *args, **kwargs)
        claimed = idempotency.claim(
            scope=scope, key=key, fingerprint=idempotency.fingerprint(request)
        )
        if isinstance(claimed, HttpResponse):
            return claimed
        request._mailhost_idempotency = claimed
        return view_func(request, *args, **kwargs)

    return operation


api.add_decorator(_guard_view, mode="view")
api.add_decorator(_idempotent_operation, mode="operation")


# --- errors --------------------------------------------------------------------------------

HTTP_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    422: "invalid",
    429: "rate_limited",
}


@api.exception_handler(DomainError)
def _domain_error(request, exc: DomainError):
    response = error_response(request, exc.status, exc.code, exc.detail, field=exc.field)
    if getattr(exc, "retry_after", None):  # a sending quota (mailhost.errors.QuotaExceeded)
        response["Retry-After"] = str(exc.retry_after)
    return response


def _field_name(loc) -> str | None:
    """("body", "payload", "mailboxes", 3, "address") → "mailboxes[3].address"."""
    source, *rest = loc
    if source == "body":
        rest = rest[1:]  # the name of the route's body parameter, not part of the input
    name = ""
    for part in rest:
        name += f"[{part}]" if isinstance(part, int) else (f".{part}" if name else str(part))
    return name or None


def _message(error: dict) -> str:
    message = str(error.get("msg", "Invalid value."))
    return message.removeprefix("Value error, ")


@api.exception_handler(ValidationError)
def _validation_error(request, exc: ValidationError):
    errors = [{"field": _field_name(e.get("loc", ())), "detail": _message(e)} for e in exc.errors]
    first = errors[0] if errors else {"field": None, "detail": "Invalid input."}
    detail = f"{first['field']}: {first['detail']}" if first["field"] else first["detail"]
    return error_response(request, 422, "invalid", detail, field=first["field"], errors=errors)


@api.exception_handler(AuthenticationError)
def _unauthenticated(request, exc):
    response = error_response(
        request,
        401,
        "unauthenticated",
        "Authenticate with 'Authorization: Bearer <token>' (a valid, unrevoked, unexpired "
        "API token) or a signed-in session.",
    )
    response["WWW-Authenticate"] = 'Bearer realm="mailhost"'
    return response


@api.exception_handler(Throttled)
def _throttled(request, exc: Throttled):
    # ninja adds the Retry-After header from the throttle's wait().
    return error_response(
        request,
        429,
        "rate_limited",
        f"Too many requests: at most {settings.API_RATE_LIMIT} per "
        f"{settings.API_RATE_LIMIT_WINDOW_SECONDS} s per token. Retry after the time in the "
        "Retry-After header.",
    )


@api.exception_handler(HttpError)
def _http_error(request, exc: HttpError):
    code = HTTP_CODES.get(exc.status_code, "error")
    return error_response(request, exc.status_code, code, str(exc))


@api.exception_handler(Http404)
def _not_found(request, exc):
    return error_response(request, 404, "not_found", "Not found.")


@api.exception_handler(MultiPartParserError)
def _unreadable_multipart(request, exc):
    # Raised wherever the body is first parsed (the Idempotency-Key fingerprint, a File
    # parameter): the client sent something that is not multipart/form-data, e.g. no boundary.
    return error_response(
        request,
        400,
        "bad_request",
        f"The body is not valid multipart/form-data ({exc}); send JSON, or a multipart body "
        "with the boundary named in its Content-Type.",
    )


@api.exception_handler(RequestDataTooBig)
def _too_big(request, exc):
    return error_response(request, 413, "payload_too_large", "The request body is too large.")


def _database_unavailable(request, exc):
    logger.error("API: database unavailable: %s", exc)
    response = error_response(
        request,
        503,
        "database_unavailable",
        # Not "nothing was changed": a request that writes in several steps (a bulk create)
        # answers row by row what it committed instead of coming here.
        "The database is unavailable or busy, so this request did not complete. Retry "
        "shortly.",
    )
    response["Retry-After"] = "10"
    return response


api.add_exception_handler(OperationalError, _database_unavailable)
api.add_exception_handler(InterfaceError, _database_unavailable)


@api.exception_handler(redis.RedisError)
def _redis_unavailable(request, exc):
    logger.error("API: Redis unavailable: %s", exc)
    response = error_response(
        request, 503, "broker_unavailable", "The message broker is unavailable. Retry shortly."
    )
    response["Retry-After"] = "10"
    return response


@api.exception_handler(IntegrityError)
def _integrity_error(request, exc):
    # Services check first; this is a concurrent change winning a unique constraint.
    logger.info("API: integrity error: %s", exc)
    return error_response(
        request, 409, "conflict", "This conflicts with a change made at the same time; retry."
    )


@api.exception_handler(DataError)
def _data_error(request, exc):
    logger.info("API: data error: %s", exc)
    return error_response(request, 422, "invalid", "A value is out of range for its field.")


@api.exception_handler(Exception)
def _unexpected(request, exc):
    logger.error("API: unexpected error", exc_info=exc)
    return error_response(
        request, 500, "server_error", "Something went wrong on our side; it has been logged."
    )


# --- health --------------------------------------------------------------------------------


class CheckOut(Schema):
    ok: bool
    detail: str


class CertificateHealthOut(Schema):
    name: str = Field(description='"mail-host", or the live domain whose service hosts it covers.')
    not_after: dt.datetime | None
    days_left: int | None
    renewal_failing: bool
    alert: bool = Field(description="Renewal keeps failing and it expires within the alert days.")


class NodeHealthOut(Schema):
    name: str
    ok: bool
    certificates: list[CertificateHealthOut]
    desired_revision: int
    applied_revision: int
    lag: int
    applied_at: dt.datetime | None
    detail: str


class StatusChecksOut(Schema):
    ok: int
    problem: int
    unknown: int
    problem_groups: list[str] = Field(description="Kinds of check with a problem (disk, dnsbl…).")
    checked_at: dt.datetime | None


class HealthOut(Schema):
    ok: bool
    failing: list[str]
    database: CheckOut
    broker: CheckOut
    nodes: list[NodeHealthOut]
    warnings: list[str] = Field(description="Settings unsafe in production (dev relaxations).")
    checks: StatusChecksOut | None = Field(
        description="The status page's checks, counted (they never make `ok` false); null "
        "while the database is down.")


@api.get(
    "/health",
    auth=None,
    response={200: HealthOut, 503: HealthOut},
    tags=["health"],
    summary="Health of the database, broker and mail nodes",
)
def health(request):
    """Public and secret-free: 200 when every part works, 503 naming the parts that do not."""
    result = health_checks.health()
    return Status(200 if result["ok"] else 503, result)


# --- routers -------------------------------------------------------------------------------

from bans.api import router as bans_router  # noqa: E402
from delivery.api import router as delivery_router  # noqa: E402
from delivery.api import staff_router as delivery_staff_router  # noqa: E402
from identity.api import router as identity_router  # noqa: E402
from mailboxes.api import router as mailboxes_router  # noqa: E402  (the routers import the above)
from mailboxes.staff_api import staff_router as mailboxes_staff_router  # noqa: E402
from mailcrypt.api import staff_router as mailcrypt_staff_router  # noqa: E402
from reports.api import router as reports_router  # noqa: E402
from routing.api import router as routing_router  # noqa: E402
from routing.api import staff_router as routing_staff_router  # noqa: E402
from routing.api import tls_router as routing_tls_router  # noqa: E402
from tenants.api import router as tenants_router  # noqa: E402
from tenants.staff_api import router as staff_router  # noqa: E402

api.add_router("", tenants_router)
api.add_router("", mailboxes_router)
api.add_router("", bans_router)
api.add_router("", delivery_router)
api.add_router("", reports_router)
api.add_router("/staff", staff_router, auth=[StaffTokenAuth(), StaffSessionAuth()])
api.add_router("/staff", delivery_staff_router, auth=[StaffTokenAuth(), StaffSessionAuth()])
api.add_router("/staff", mailcrypt_staff_router, auth=[StaffTokenAuth(), StaffSessionAuth()])
api.add_router("/staff", mailboxes_staff_router, auth=[StaffTokenAuth(), StaffSessionAuth()])
api.add_router("", routing_router)
api.add_router("/staff", routing_staff_router, auth=[StaffTokenAuth(), StaffSessionAuth()])
api.add_router("/staff", routing_tls_router, auth=[StaffTokenAuth(), StaffSessionAuth()])
api.add_router("", identity_router)


# Unknown paths under /api/v1/ get a JSON 404 too (registered last, so it only catches misses).
fallback = Router()


@fallback.api_operation(
    ["GET", "POST", "PUT", "PATCH", "DELETE"], "/{path:rest}", auth=None, include_in_schema=False
)
def unknown_path(request, rest: str):
    return error_response(request, 404, "not_found", "There is no such API endpoint.")


api.add_router("", fallback)

__all__ = ["api", "error_response"]
