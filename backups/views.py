"""Staff's backup page at /mail-admin/backups/: the runs, and a backup started on request."""

from django.contrib import messages
from django.shortcuts import redirect, render
from django.urls import reverse

from backups.selectors import backup_runs, scope_resolve
from backups.services.runs import backup_request
from backups.targets import TargetError, target_from_spec
from backups.tasks import run_backup
from mailhost.errors import Invalid
from tenants.access import require_staff
from tenants.pages import confirm_then_post, operator_page, paginate


@operator_page
def backups(request):
    require_staff(request.actor, "see backups")
    page = paginate(request, backup_runs(request.actor))
    return render(request, "backups/backups.html", {"page": page, "section": "backups"})


@operator_page
def backup_start(request):
    require_staff(request.actor, "start backups")
    scope = scope_resolve(request.actor, (request.GET.get("scope") or "install")[:300])
    try:
        target = target_from_spec()
    except TargetError as exc:
        raise Invalid(str(exc), field="target") from None

    def perform():
        run = backup_request(actor=request.actor, scope=scope.label, target="default",
                             enqueue=lambda pk: run_backup.delay(pk, "default"))
        messages.success(request, f"Backup {run.pk} of {scope.label} to {target.label} queued.")
        return redirect("backups:list")

    return confirm_then_post(
        request, perform,
        title=f"Back up {scope.label} now?",
        body=f"Its mail (and, for the whole install, the portal database, secrets and node "
        f"state) is encrypted and sent to {target.label}. Only what the target lacks is "
        "uploaded; the run shows here when it ends.",
        button="Start backup", cancel=reverse("backups:list"), section="backups",
        danger=False, fields={"scope": scope.label},
    )
