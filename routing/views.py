"""/mail-admin/outbound/tls/: outbound TLS posture (staff): the install-wide settings, the
per-domain policies, and the TLS failures toward each recipient domain."""

from django.conf import settings
from django.contrib import messages
from django.shortcuts import redirect, render
from django.urls import reverse

from mailhost.errors import DomainError
from routing.forms import TlsPolicyForm
from routing.selectors import tls_failure_list, tls_failure_summary, tls_policy_get, tls_policy_list
from routing.services import tls_policy_delete, tls_policy_set
from tenants.pages import confirm_then_post, form_errors_from, operator_page


def _settings() -> list[tuple[str, str]]:
    return [(name, str(getattr(settings, name))) for name in (
        "SMTP_OUTBOUND_TLS_MODE", "SMTP_OUTBOUND_DANE_MODE", "SMTP_OUTBOUND_DNSSEC_VALIDATE",
        "SMTP_OUTBOUND_MTA_STS_ENFORCE")]


@operator_page
def tls_page(request):
    policies = tls_policy_list(request.actor)  # staff only: Forbidden for anyone else
    form = TlsPolicyForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            policy, created = tls_policy_set(actor=request.actor, **form.cleaned_data)
        except DomainError as exc:
            form_errors_from(form, exc)
        else:
            messages.success(request, f"Mail to {policy.domain} now demands {policy.level}.")
            return redirect("routing:tls")
    domain = (request.GET.get("domain") or "").strip()[:253]
    context = {
        "section": "outbound-tls", "settings_rows": _settings(), "policies": policies,
        "form": form, "summary": tls_failure_summary(request.actor), "domain": domain,
        "failures": tls_failure_list(request.actor, domain=domain or None)[:100],
    }
    return render(request, "routing/tls.html", context, status=400 if form.errors else 200)


@operator_page
def tls_policy_remove(request, domain):
    policy = tls_policy_get(request.actor, domain)

    def perform():
        tls_policy_delete(actor=request.actor, domain=policy.domain)
        messages.success(request, f"The TLS policy for {policy.domain} was removed.")
        return redirect("routing:tls")

    return confirm_then_post(
        request, perform, title=f"Remove the TLS policy for {policy.domain}?",
        body="Mail to the domain then follows its MTA-STS policy, its DANE records and the "
        "install-wide default again.",
        button="Remove policy", cancel=reverse("routing:tls"), section="outbound-tls",
    )
