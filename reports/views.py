"""/mail-admin/ pages for reports: upload one, and the log of every report received.

Thin: an upload is one call into reports.services, as the API's route is."""

from django import forms
from django.contrib import messages
from django.shortcuts import redirect, render
from django.utils import timezone

from mailhost.errors import NotFound
from reports import figures, selectors
from reports.charts import dmarc_chart
from reports.rdns import source_names
from reports.services import report_submit
from tenants.pages import operator_page, paginate, require_page_write


class UploadForm(forms.Form):
    file = forms.FileField(
        label="Report file",
        help_text="An aggregate report (.xml, .xml.gz, .zip), a TLS report (.json, .json.gz), "
                  "or a whole message saved as .eml (also a forwarded one, or a failure report).",
    )


@operator_page
def submissions(request):
    form = UploadForm()
    status = 200
    if request.method == "POST":
        require_page_write(request)
        form = UploadForm(request.POST, request.FILES)
        if form.is_valid():
            results = report_submit(actor=request.actor, stream=form.cleaned_data["file"],
                                    source="upload", organisation=request.organisation)
            _tell(request, results)
            if any(r.outcome != "rejected" for r in results):
                return redirect("reports:submissions", request.organisation.slug)
            status = 422
        else:
            status = 422
    rows = selectors.submissions(request.actor, organisation=request.organisation)
    context = {"form": form, "page": paginate(request, rows), "section": "reports"}
    return render(request, "mail_admin/reports.html", context, status=status)


def _tell(request, results) -> None:
    for result in results:
        if result.outcome == "accepted":
            messages.success(request, f"Stored the {result.kind} report {result.report_id} "
                                      f"about {result.domain}.")
        elif result.outcome == "duplicate":
            messages.info(request, f"The report {result.report_id} was stored before.")
        else:
            messages.error(request, f"Rejected: {result.reason}")


@operator_page
def domain_reports(request, name):
    """A domain's reports: DMARC alignment over time, sending sources (failing ones first),
    what the DMARC advice makes of them, TLS results by reporter, failure samples."""
    domain = selectors.domain_for_reports(request.actor, name, organisation=request.organisation)
    if domain.organisation_id != request.organisation.pk:
        raise NotFound("That domain was not found.")
    now = timezone.now()
    dmarc = figures.dmarc_figures(domain, now=now)
    context = {
        "domain": domain,
        "dmarc": dmarc,
        "sources": _with_names(dmarc.sources),
        "advice": figures.dmarc_advice(domain, now=now),
        "chart": dmarc_chart(dmarc.days, end=timezone.localdate(now), count=dmarc.window_days),
        "tls": figures.tls_figures(domain, now=now),
        "samples": figures.failure_samples(domain),
        "section": "domains",
    }
    return render(request, "mail_admin/domain_reports.html", context)


def _with_names(sources) -> list[tuple]:
    names = source_names(s.ip for s in sources)
    return [(source, names.get(source.ip)) for source in sources]
