"""Is the portal able to do its work? The database, the broker and each mail node's progress.

Public (load balancers and monitors call it without a token), so it says what failed and never
why in detail: no URLs or error text. Certificates are listed by name (the mail host's is
"mail-host", a live domain's is the domain, already public in its DNS) with their expiry; one
that keeps failing to renew is a warning, never a failure (the portal itself still works).
"""

import datetime as dt
import logging

from django.conf import settings
from django.db import DatabaseError, connection
from django.utils import timezone
from kombu import Connection

from nodes.certificates import certificate_statuses
from nodes.models import MailNode

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


def node_state(node: MailNode, now: dt.datetime) -> dict:
    """A node is failing when changes wait and its reconciler errs or has stopped applying.

    Lag alone is normal for a moment after each change; lag with a recorded error, or with no
    apply for API_HEALTH_NODE_STALE_SECONDS (the periodic full reconcile records one regularly),
    means changes are not going live.
    """
    stale_after = dt.timedelta(seconds=settings.API_HEALTH_NODE_STALE_SECONDS)
    problem = None
    if node.lag > 0 and node.last_error:
        problem = "The last reconcile failed; changes are waiting."
    elif node.lag > 0 and (node.applied_at is None or now - node.applied_at > stale_after):
        problem = "Changes are waiting and nothing has been applied recently."
    return {
        "name": node.name,
        "ok": problem is None,
        "certificates": [
            {"name": c.name, "not_after": c.not_after, "days_left": c.days_left,
             "renewal_failing": c.failures > 0, "alert": c.alert}
            for c in certificate_statuses(node, now)
        ],
        "desired_revision": node.desired_revision,
        "applied_revision": node.applied_revision,
        "lag": node.lag,
        "applied_at": node.applied_at,
        "detail": problem or ("Applying changes." if node.lag else "Up to date."),
    }


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
    }
