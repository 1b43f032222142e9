"""A request id on every request, its response (`X-Request-ID`) and every log line it causes.

An operator reading `var/log/web.log` (or a container's stderr) finds the lines of the
request a user reports by the id that user saw. A proxy's id is kept when it is a sane token,
so one id follows the request through the proxy's logs too.
"""

import contextvars
import logging
import re
import uuid

HEADER = "X-Request-ID"
_SANE = re.compile(r"^[A-Za-z0-9._:-]{8,128}$")  # never lets a newline into a log line
_current: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")


def current() -> str:
    return _current.get()


class RequestIdMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        given = request.headers.get(HEADER, "")
        request.request_id = given if _SANE.match(given) else uuid.uuid4().hex
        token = _current.set(request.request_id)
        try:
            response = self.get_response(request)
        finally:
            _current.reset(token)
        response[HEADER] = request.request_id
        return response


class RequestIdFilter(logging.Filter):
    """Adds `request_id` to every record: the request being handled, or "-" outside one.

    Django logs a failed response (`django.request`) after the middleware has returned; that
    record carries the request itself, so its id is taken from there.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        request = getattr(record, "request", None)
        record.request_id = getattr(request, "request_id", None) or _current.get()
        return True
