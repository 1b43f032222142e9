"""The operators' page of login bans at /mail-admin/bans/ and its lift action."""

from django.contrib import messages
from django.shortcuts import redirect, render
from django.urls import reverse

from bans.selectors import ban_get, ban_list, throttled_accounts
from bans.services import ban_lift
from tenants.pages import confirm_then_post, operator_page, paginate


@operator_page
def bans(request):
    page = paginate(request, ban_list(request.actor))
    context = {
        "page": page,
        "throttles": throttled_accounts(request.actor),
        "section": "bans",
    }
    return render(request, "bans/bans.html", context)


@operator_page
def ban_lift_page(request, ip):
    ban = ban_get(request.actor, ip)

    def perform():
        ban_lift(actor=request.actor, ip=ban.ip)
        messages.success(request, f"The ban on {ban.ip} was lifted.")
        return redirect("bans:list")

    return confirm_then_post(
        request,
        perform,
        title=f"Lift the ban on {ban.ip}?",
        body="The address may log in again at once on IMAP, SMTP, ManageSieve and the portal. "
        "If the failed logins were an attack, it will be banned again after the next ones.",
        button="Lift ban",
        cancel=reverse("bans:list"),
        section="bans",
    )
