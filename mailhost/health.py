"""Is the portal able to do its work? The database, the broker and each mail node's progress.

Public (load balancers and monitors call it without a token), so it says what failed and never
why in detail: no URLs or error text. Certificates are listed by name (the mail host's is
"mail-host", a live domain's is the domain, already public in its DNS) with their expiry; one
that keeps failing to renew is a warning, never a failure (the portal itself still works).
"""

import logging

from django.conf import settings
from django.db import DatabaseError, connection
from django.utils import timezone
from kombu import Connection

from nodes.health import node_state
from nodes.models import MailNode
from status.selectors import status_summary

logger = logging.getLogger(__name__)

BROKER_TIMEOUT_SECONDS = 2


def database_ok() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError as exc:
        logger.warning("health: database check failed: %s", exc)
        return False
    return True


def broker_ok() -> bool:
    try:
        with Connection(
            settings.CELERY_BROKER_URL,
            connect_timeout=BROKER_TIMEOUT_SECONDS,
            transport_options={
                "socket_connect_timeout": BROKER_TIMEOUT_SECONDS,
                "socket_timeout": BROKER_TIMEOUT_SECONDS,
            },
        ) as broker:
            broker.ensure_connection(max_retries=0)
    except Exception as exc:  # kombu raises transport-specific errors; any means "down"
        logger.warning("health: broker check failed: %s", exc)
        return False
    return True


DEV_WARNING = (
    "MAILHOST_STACK_DEV is on: Dovecot's failed-login delay and penalty are off and loopback "
    "is never banned. For development and tests only; set MAILHOST_STACK_DEV=false in production."
)


def warnings() -> list[str]:
    """Settings that are wrong for production; reported, never failing the check."""
    return [DEV_WARNING] if settings.MAILHOST_STACK_DEV else []


def template_warnings(request) -> dict:
    """Context processor: staff pages show the same warnings as /api/v1/health."""
    user = getattr(request, "user", None)
    staff = bool(user is not None and user.is_authenticated and user.is_superuser)
    return {"mailhost_warnings": warnings() if staff else []}


def health() -> dict:
    database = database_ok()
    nodes = []
    if database:
        try:
            now = timezone.now()
            nodes = [node_state(node, now) for node in MailNode.objects.order_by("name")]
        except DatabaseError as exc:
            logger.warning("health: reading the mail nodes failed: %s", exc)
            database = False
    broker = broker_ok()
    failing = [name for name, ok in (("database", database), ("broker", broker)) if not ok]
    failing += [f"node:{node['name']}" for node in nodes if not node["ok"]]
    expiring = [f"{node['name']}:{c['name']}" for node in nodes for c in node["certificates"]
                if c["alert"]]
    return {
        "ok": not failing,
        "failing": failing,
        "database": {"ok": database, "detail": "Reachable." if database else "Unreachable."},
        "broker": {"ok": broker, "detail": "Reachable." if broker else "Unreachable."},
        "nodes": nodes,
        "warnings": warnings() + (
            [f"Certificates not renewing and expiring soon: {', '.join(expiring)}."]
            if expiring else []),
        # The status page's checks (status/): reported, never failing this check (a blocklist
        # listing must not take the portal out of a load balancer).
        "checks": status_summary() if database else None,
    }
