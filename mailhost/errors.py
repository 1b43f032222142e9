"""Domain errors raised by services and selectors; pages and the API map them to HTTP.

Each has a stable `code` (for API clients) and a human `detail`; `field` names the input at fault.
"""


class DomainError(Exception):
    code = "error"
    status = 400

    def __init__(self, detail: str, *, field: str | None = None, code: str | None = None):
        super().__init__(detail)
        self.detail = detail
        self.field = field
        if code:
            self.code = code


class NotFound(DomainError):
    """Missing, or another tenant's: the two are indistinguishable on purpose."""

    code = "not_found"
    status = 404


class Forbidden(DomainError):
    code = "forbidden"
    status = 403


class Conflict(DomainError):
    code = "conflict"
    status = 409


class Invalid(DomainError):
    code = "invalid"
    status = 422


class TooLarge(DomainError):
    code = "payload_too_large"
    status = 413


class Unavailable(DomainError):
    """A part the request needs (a mail node) does not answer; retrying later may work."""

    code = "unavailable"
    status = 503


class QuotaExceeded(DomainError):
    """A sending quota: retry after `retry_after` seconds (the API's Retry-After)."""

    code = "quota_exceeded"
    status = 429

    def __init__(self, detail: str, *, retry_after: int, **kwargs):
        super().__init__(detail, **kwargs)
        self.retry_after = retry_after
