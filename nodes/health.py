"""Is a mail node applying the portal's changes? Read by /api/v1/health and the status page."""

import datetime as dt

from django.conf import settings

from nodes.certificates import certificate_statuses
from nodes.models import MailNode


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
