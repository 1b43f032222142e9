"""/mail-admin/status/: the status page (staff see everything; members their domains)."""

from itertools import groupby

from django.shortcuts import render

from status.selectors import housekeeping_runs, status_alerts, status_checks
from tenants.pages import operator_page

GROUPS = {
    "nodes": "Mail nodes", "daemons": "Daemons", "reconcile": "Reconcile", "queue": "Mail queue",
    "disk": "Disk",
    "tls": "Certificates", "dns": "Mail host DNS", "dnsbl": "Blocklists",
    "domains": "Domains", "housekeeping": "Housekeeping",
}


@operator_page
def status_page(request):
    checks = list(status_checks(request.actor))
    checks.sort(key=lambda c: (list(GROUPS).index(c.group) if c.group in GROUPS else 99, c.key))
    groups = [(GROUPS.get(group, group), list(items))
              for group, items in groupby(checks, key=lambda c: c.group)]
    context = {
        "groups": groups,
        "problems": sum(1 for c in checks if c.state == "problem"),
        "unknown": sum(1 for c in checks if c.state == "unknown"),
        "alerts": list(status_alerts(request.actor)[:20]),
        "runs": list(housekeeping_runs(request.actor)[:20]),
        "section": "status",
    }
    return render(request, "status/status.html", context)
