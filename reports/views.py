"""/mail-admin/ pages for reports: upload one, and the log of every report received.

Thin: an upload is one call into reports.services, as the API's route is."""

from django import forms
from django.contrib import messages
from django.shortcuts import redirect, render

from mailhost.pages import operator_page, paginate, require_page_write
from reports import selectors
from reports.services import report_submit


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
