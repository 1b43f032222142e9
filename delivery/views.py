"""The operators' "Sent mail" pages: the organisation's messages and one message's timeline."""

from django.shortcuts import render

from delivery.models import RecipientStatus, overall_status
from delivery.selectors import message_get, message_list
from mailhost.errors import NotFound
from mailhost.pages import operator_page, paginate

STATUSES = [s for s in RecipientStatus.values]


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
