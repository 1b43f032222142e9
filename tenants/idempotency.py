"""Idempotency-Key on API POSTs: a retry with the same key and body gets the first response.

Keys are scoped to the token (or signed-in user) that sent them and kept for
API_IDEMPOTENCY_TTL_HOURS. The same key with a different method, path or body is refused (422);
the same key while the first request is still running is a 409, so two retries racing each
other cannot both act. Server errors, 401/403 and 429 are not kept: retrying those may succeed.
"""

import datetime as dt
import hashlib
import hmac
import json

from django.conf import settings
from django.db import IntegrityError, transaction
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from mailhost.crypto import decrypt, encrypt
from mailhost.errors import Conflict, Invalid
from tenants.access import Actor
from tenants.models import IdempotencyRecord

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255
# A claim older than this with no response belongs to a request that died: it may be taken over.
ABANDONED_AFTER = dt.timedelta(minutes=10)
NOT_KEPT = frozenset({401, 403, 429})


def actor_scope(actor: Actor | None) -> str | None:
    if actor is None:
        return None
    if actor.token is not None:
        return f"token:{actor.token.pk}"
    if actor.user is not None and actor.user.is_authenticated:
        return f"user:{actor.user.pk}"
    return None


def fingerprint(request: HttpRequest) -> str:
    """Method, path with query and body, compared by content: a JSON body regardless of
    spacing and key order, a multipart form by its fields and files, not its boundary.

    Keyed with SECRET_KEY: a body may hold a chosen mailbox password, and a plain SHA-256 of
    it at rest would be far cheaper to guess from than the mailbox's bcrypt hash."""
    digest = hmac.new(settings.SECRET_KEY.encode(), digestmod=hashlib.sha256)
    digest.update(f"{request.method} {request.get_full_path()}\n".encode())
    digest.update(_canonical_body(request))
    return digest.hexdigest()


def _canonical_body(request: HttpRequest) -> bytes:
    if request.content_type == "multipart/form-data":  # parsed already: its stream is spent
        fields = sorted(request.POST.lists())
        parts: list = [["field", key, value] for key, values in fields for value in values]
        for name, uploads in sorted(request.FILES.lists()):
            for upload in uploads:
                content = hashlib.sha256(b"".join(upload.chunks())).hexdigest()
                upload.seek(0)  # the route reads it next
                parts.append(["file", name, upload.name, content])
        return json.dumps(parts).encode()
    try:
        return json.dumps(
            json.loads(request.body or b"null"), sort_keys=True, separators=(",", ":")
        ).encode()
    except ValueError:
        return request.body


def _check_key(key: str) -> None:
    if not 1 <= len(key) <= MAX_KEY_LENGTH or not all(33 <= ord(ch) <= 126 for ch in key):
        raise Invalid(
            f"The {HEADER} header is 1–{MAX_KEY_LENGTH} printable ASCII characters "
            "(a UUID is a good choice).",
            field=HEADER,
        )


def claim(*, scope: str, key: str, fingerprint: str) -> IdempotencyRecord | HttpResponse:
    """Claim `key` for this request, or return the response to replay.

    Raises Invalid when the key was used for a different request, Conflict while the request
    that first used it is still running.
    """
    _check_key(key)
    now = timezone.now()
    expired_before = now - dt.timedelta(hours=settings.API_IDEMPOTENCY_TTL_HOURS)
    record = IdempotencyRecord.objects.filter(scope=scope, key=key).first()
    if record is not None and record.created_at <= expired_before:
        record.delete()
        record = None
    if record is None:
        try:
            with transaction.atomic():
                created = IdempotencyRecord.objects.create(
                    scope=scope, key=key, fingerprint=fingerprint, created_at=now
                )
        except IntegrityError:  # a concurrent request with the same key got there first
            record = IdempotencyRecord.objects.filter(scope=scope, key=key).first()
        else:
            IdempotencyRecord.objects.filter(created_at__lte=expired_before).delete()
            return created
    if record is not None and record.fingerprint != fingerprint:
        raise Invalid(
            f"This {HEADER} was already used for a different request; use a new key.",
            field=HEADER,
            code="idempotency_key_reused",
        )
    if record is not None and record.status_code is not None:
        return replay(record)
    if record is None or record.created_at > now - ABANDONED_AFTER or not _take_over(record, now):
        raise Conflict(
            f"A request with this {HEADER} is still being processed; retry shortly.",
            field=HEADER,
            code="idempotency_in_progress",
        )
    return record


def _take_over(record: IdempotencyRecord, now: dt.datetime) -> bool:
    taken = IdempotencyRecord.objects.filter(
        pk=record.pk, status_code=None, created_at=record.created_at
    ).update(created_at=now)
    record.created_at = now
    return taken == 1


def finish(record: IdempotencyRecord, response: HttpResponse) -> None:
    """Keep the response for replay, or drop the claim if a retry deserves another try."""
    status = response.status_code
    if status >= 500 or status in NOT_KEPT or getattr(response, "streaming", False):
        IdempotencyRecord.objects.filter(pk=record.pk).delete()
        return
    IdempotencyRecord.objects.filter(pk=record.pk).update(
        status_code=status,
        content_type=response.get("Content-Type", "")[:100],
        body_encrypted=encrypt(response.content),
    )


def replay(record: IdempotencyRecord) -> HttpResponse:
    response = HttpResponse(
        decrypt(record.body_encrypted), status=record.status_code, content_type=record.content_type
    )
    response["Idempotent-Replayed"] = "true"
    return response
