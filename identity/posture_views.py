"""/mail-admin/ pages for a domain's DNS posture: the records to publish (copy, zone file, live
check status), DKIM rotation, the DMARC stage and its next step, BIMI, MTA-STS, check history.

Everything posture-specific comes from identity/ (selectors for reads, services for writes,
records.py builds the records): these views only present it.
"""

from django.conf import settings
from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse

from identity import selectors as posture
from identity import services as posture_services
from identity.models import MtaStsMode
from identity.records import rdata_text
from mailboxes.views import page_domain
from mailhost.errors import Conflict, Invalid
from tenants.pages import confirm_then_post, operator_page, paginate


def _dns_url(request, domain) -> str:
    return reverse("mailboxes:domain_dns", args=[request.organisation.slug, domain.name])


@operator_page
def domain_dns(request, name):
    return _dns_page(request, page_domain(request, name))


def _dns_page(request, domain, *, status: int = 200):
    overview = posture.dns_overview(request.actor, domain.name, organisation=request.organisation)
    records = [(record, rdata_text(record)) for record in overview.records]
    context = {
        "domain": domain,
        "overview": overview,
        "ownership_record": posture.verification_record(domain),
        "records": records,
        "pending": any(r.status is None for r in overview.records),
        "history": paginate(
            request,
            posture.check_history(request.actor, domain.name, organisation=request.organisation),
            per_page=20,
            param="hpage",
        ),
        "mtasts_modes": MtaStsMode.choices,
        "bimi_url": posture.bimi_logo_url(domain.name) if overview.posture.bimi_sha256 else "",
        "new": request.GET.get("new") == "1",
        "live": any(r.status is None for r in overview.records) or "checking" in request.GET,
        "section": "domains",
    }
    if request.headers.get("X-Requested-With") == "fetch":
        return render(request, "mail_admin/dns_records.html", context)
    return render(request, "mail_admin/domain_dns.html", context, status=status)


def _refused(request, domain, exc):
    """Show why a posture change was refused, on the DNS page itself (409/422)."""
    messages.error(request, exc.detail)
    return _dns_page(request, domain, status=exc.status)


@operator_page
def domain_zone(request, name):
    domain = page_domain(request, name)
    text = posture.domain_zone(request.actor, domain.name, organisation=request.organisation)
    response = HttpResponse(text, content_type="text/dns; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{domain.name}.zone"'
    return response


@operator_page
def domain_check(request, name):
    """Queue a live check now (the page refreshes its status as the verdicts come in).

    A check writes history, may take DKIM rotation steps and mails admins: a write."""
    domain = page_domain(request, name, write=request.method == "POST")
    if request.method == "POST":
        posture_services.dns_check_queue(actor=request.actor, domain=domain)
        messages.info(request, "Checking the records now; the status below updates by itself.")
        return redirect(_dns_url(request, domain) + "?checking=1")
    return redirect(_dns_url(request, domain))


@operator_page
def dkim_rotate(request, name):
    domain = page_domain(request, name, write=True)

    def perform():
        try:
            keys = posture_services.dkim_rotate_start(actor=request.actor, domain=domain)
        except Conflict as exc:
            return _refused(request, domain, exc)
        else:
            selectors = ", ".join(k.selector for k in keys)
            messages.success(
                request, f"New key {selectors} generated. Publish its record; signing switches "
                "once it is seen in DNS.",
            )
        return redirect(_dns_url(request, domain) + "#dkim")

    return confirm_then_post(
        request,
        perform,
        title=f"Rotate the DKIM key of {domain.display_name}?",
        body="A new key is generated now. Mail stays signed with the current key until the new "
        "one is published and seen in DNS; the old one stays published for a grace period.",
        button="Generate the next key", cancel=_dns_url(request, domain), section="domains",
        danger=False,
    )


@operator_page
def dmarc_stage(request, name):
    domain = page_domain(request, name, write=True)
    if request.method == "POST":
        try:
            pct = int(request.POST.get("pct") or 100)
            posture_services.dmarc_set_stage(
                actor=request.actor, domain=domain, policy=request.POST.get("policy", ""), pct=pct,
                force=request.POST.get("force") == "1",
            )
        except ValueError:
            exc = Invalid("The percentage is a whole number from 1 to 100.", field="pct")
            return _refused(request, domain, exc)
        except (Invalid, Conflict) as exc:
            return _refused(request, domain, exc)
        else:
            messages.success(request, "DMARC stage changed. Publish the new _dmarc record.")
    return redirect(_dns_url(request, domain) + "#dmarc")


@operator_page
def bimi(request, name):
    domain = page_domain(request, name, write=True)
    if request.method == "POST":
        try:
            if request.POST.get("remove"):
                posture_services.bimi_remove(actor=request.actor, domain=domain)
                messages.success(request, "The BIMI logo was removed.")
            else:
                upload = request.FILES.get("logo")
                if upload is None:
                    raise Invalid("Choose an SVG file.", field="logo")
                data = upload.read(settings.MAILHOST_BIMI_MAX_BYTES + 1)
                posture_services.bimi_upload(actor=request.actor, domain=domain, data=data)
                messages.success(request, "The logo passed the checks and is stored.")
        except Invalid as exc:
            return _refused(request, domain, exc)
    return redirect(_dns_url(request, domain) + "#bimi")


@operator_page
def mtasts(request, name):
    domain = page_domain(request, name, write=True)
    if request.method == "POST":
        try:
            posture_services.mtasts_set(
                actor=request.actor, domain=domain, mode=request.POST.get("mode", "")
            )
        except Invalid as exc:
            return _refused(request, domain, exc)
        else:
            messages.success(request, "MTA-STS mode saved; its policy id changed with it.")
    return redirect(_dns_url(request, domain) + "#mta-sts")

