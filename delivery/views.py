"""The operators' pages of the outbound channel: sent mail (a list, one message's timeline),
the suppression list and webhooks (endpoints, their deliveries, replay)."""

from django.contrib import messages
from django.shortcuts import redirect, render
from django.urls import reverse

from delivery.models import RecipientStatus, overall_status
from delivery.selectors import message_get, message_list
from delivery.services import suppression_add, suppression_list, suppression_remove
from delivery.services.webhooks import (
    EVENTS,
    webhook_create,
    webhook_delete,
    webhook_deliveries,
    webhook_list,
    webhook_replay,
)
from mailhost.errors import Invalid, NotFound
from tenants.pages import (
    confirm_page,
    confirm_then_post,
    operator_page,
    paginate,
    require_page_write,
)

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


@operator_page
def webhooks(request):
    """The endpoints and their recent deliveries (filter: state); a writer adds one with the
    form on it and sees its signing secret once, on the answer."""
    error, secret = "", ""
    if request.method == "POST":
        require_page_write(request)
        try:
            _, secret = webhook_create(
                actor=request.actor, organisation=request.organisation,
                url=request.POST.get("url", ""), events=request.POST.getlist("events"))
        except Invalid as exc:
            error = exc.detail
    state = request.GET.get("state") or ""
    state = state if state in ("pending", "delivered", "dead") else ""
    deliveries = webhook_deliveries(request.actor, request.organisation, state=state or None)
    context = {
        "webhooks": list(webhook_list(request.actor, request.organisation)),
        "page": paginate(request, deliveries), "state": state, "events": EVENTS,
        "error": error, "secret": secret, "section": "webhooks",
    }
    return render(request, "mail_admin/webhooks.html", context,
                  status=422 if error else 201 if secret else 200)


@operator_page
def webhook_delete_page(request, webhook_id):
    require_page_write(request)
    webhook = webhook_list(request.actor, request.organisation).filter(pk=webhook_id).first()
    if webhook is None:
        raise NotFound("That webhook was not found.")

    def perform():
        webhook_delete(actor=request.actor, organisation=request.organisation,
                       webhook_id=webhook.pk)
        messages.success(request, f"The webhook to {webhook.url} is removed.")
        return redirect("delivery:webhooks", request.organisation.slug)

    return confirm_then_post(
        request, perform, title=f"Remove the webhook to {webhook.url}?",
        body="Its deliveries go with it; nothing more is sent to it.", button="Remove",
        cancel=reverse("delivery:webhooks", args=[request.organisation.slug]),
        section="webhooks")


@operator_page
def webhook_replay_page(request, delivery_id):
    require_page_write(request)
    delivery = webhook_deliveries(request.actor, request.organisation).filter(
        pk=delivery_id).first()
    if delivery is None:
        raise NotFound("That webhook delivery was not found.")

    def perform():
        webhook_replay(actor=request.actor, organisation=request.organisation,
                       delivery_id=delivery.pk)
        messages.success(request, f"Event {delivery.payload['id']} is sent again.")
        return redirect("delivery:webhooks", request.organisation.slug)

    return confirm_then_post(
        request, perform, title=f"Send event {delivery.payload['id']} again?",
        body=f"It goes to {delivery.webhook.url} with the same event id, with a fresh round "
             "of attempts.", button="Send again", danger=False,
        cancel=reverse("delivery:webhooks", args=[request.organisation.slug]),
        section="webhooks")
