"""The operators' pages of the outbound channel: sent mail (a list, one message's timeline)
and the suppression list."""

from django.contrib import messages
from django.shortcuts import redirect, render
from django.urls import reverse

from delivery.models import RecipientStatus, overall_status
from delivery.selectors import message_get, message_list
from delivery.services import suppression_add, suppression_list, suppression_remove
from mailhost.errors import Invalid, NotFound
from tenants.pages import confirm_page, operator_page, paginate, require_page_write

STATUSES = list(RecipientStatus.values)


@operator_page
def sent_list(request):
    recipient = (request.GET.get("recipient") or "").strip()[:254]
    status = request.GET.get("status") or ""
    tag = (request.GET.get("tag") or "").strip()[:64]
    messages = message_list(
        request.actor, organisation=request.organisation, recipient=recipient or None,
        status=status if status in STATUSES else None, tag=tag or None,
    )
    page = paginate(request, messages)
    rows = [(m, overall_status({r.status for r in m.recipients.all()} or {"queued"}))
            for m in page]
    context = {"page": page, "rows": rows, "recipient": recipient, "status": status,
               "tag": tag, "statuses": STATUSES, "section": "sent"}
    return render(request, "mail_admin/sent.html", context)


@operator_page
def sent_detail(request, message_id):
    message = message_get(request.actor, message_id)
    if message.organisation_id != request.organisation.id:
        raise NotFound("That message was not found.")
    context = {"message": message, "recipients": list(message.recipients.all()),
               "events": list(message.events.all()), "section": "sent",
               "status": overall_status({r.status for r in message.recipients.all()})}
    return render(request, "mail_admin/sent_message.html", context)


@operator_page
def suppressions(request):
    """The suppression list; a writer adds an address or domain with the form on it."""
    error = ""
    if request.method == "POST":
        require_page_write(request)
        value = request.POST.get("value", "")
        try:
            suppression_add(actor=request.actor, organisation=request.organisation,
                            value=value, detail=request.POST.get("detail", "")[:500])
        except Invalid as exc:
            error = exc.detail
        else:
            messages.success(request, f"{value.strip()} is suppressed.")
            return redirect("delivery:suppressions", request.organisation.slug)
    page = paginate(request, suppression_list(request.actor, request.organisation))
    context = {"page": page, "error": error, "section": "suppressions"}
    return render(request, "mail_admin/suppressions.html", context, status=422 if error else 200)


@operator_page
def suppression_remove_page(request, value):
    require_page_write(request)
    if not suppression_list(request.actor, request.organisation).filter(value=value).exists():
        raise NotFound("That address or domain is not suppressed.")
    if request.method == "POST":
        suppression_remove(actor=request.actor, organisation=request.organisation, value=value)
        messages.success(request, f"{value} is no longer suppressed.")
        return redirect("delivery:suppressions", request.organisation.slug)
    return confirm_page(
        request, title=f"Lift the suppression of {value}?",
        body="Mail from this organisation may go to it again.", button="Lift",
        cancel=reverse("delivery:suppressions", args=[request.organisation.slug]),
        section="suppressions",
    )
