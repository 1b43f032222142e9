"""The operators' pages of outbound routes: relays (set, remove, send a test through one) and
the mail queue (per organisation and domain; staff: every node's), with its actions.

/mail-admin/outbound/tls/: outbound TLS posture (staff): the install-wide settings, the
per-domain policies, and the TLS failures toward each recipient domain."""

import datetime as dt

from django.conf import settings
from django.contrib import messages
from django.shortcuts import redirect, render
from django.urls import reverse

from mailboxes.selectors import domain_get, domain_list
from mailhost.backend.postqueue import ACTIONS
from mailhost.errors import DomainError, Invalid, NotFound
from routing.forms import TlsPolicyForm
from routing.models import TlsMode
from routing.queue import QUEUES, queue_list, queue_list_all, queued_get
from routing.selectors import (
    relay_get,
    relay_list,
    tls_failure_list,
    tls_failure_summary,
    tls_policy_get,
    tls_policy_list,
    tls_report_list,
)
from routing.services import (
    RelayInput,
    queue_act,
    relay_delete,
    relay_set,
    relay_test,
    tls_policy_delete,
    tls_policy_set,
)
from tenants.pages import confirm_then_post, form_errors_from, operator_page, require_page_write

ACTION_WORDS = {"retry": "Retry now", "hold": "Hold", "release": "Release", "delete": "Delete"}


def _port(raw: str) -> int:
    try:
        return int(raw)
    except (TypeError, ValueError):
        raise Invalid("The port is a number, 1–65535.", field="port") from None


@operator_page
def relays(request):
    """The organisation's relays; a writer sets one (for a domain, or the organisation)."""
    error, field, form = "", "", {}
    if request.method == "POST":
        require_page_write(request)
        form = request.POST
        try:
            name = request.POST.get("domain", "")
            domain = domain_get(request.actor, name, organisation=request.organisation) \
                if name else None
            password = request.POST.get("password", "")
            relay_set(actor=request.actor, organisation=request.organisation, domain=domain,
                      data=RelayInput(
                          host=request.POST.get("host", ""),
                          port=_port(request.POST.get("port", "587")),
                          tls_mode=request.POST.get("tls_mode", TlsMode.REQUIRED),
                          username=request.POST.get("username", ""),
                          password=password or None,
                          spf_include=request.POST.get("spf_include", "")))
        except Invalid as exc:
            error, field = exc.detail, exc.field or ""
        else:
            messages.success(request, f"The relay of {name or 'the organisation'} is set.")
            return redirect("routing:relays", request.organisation.slug)
    context = {
        "relays": list(relay_list(request.actor, request.organisation)),
        "domains": list(domain_list(request.actor, organisation=request.organisation)
                        .values_list("name", flat=True)),
        "tls_modes": TlsMode.choices, "error": error, "field": field, "form": form,
        "section": "relays",
    }
    return render(request, "mail_admin/relays.html", context, status=422 if error else 200)


@operator_page
def relay_remove_page(request, relay_id):
    require_page_write(request)
    relay = relay_get(request.actor, request.organisation, relay_id)

    def perform():
        relay_delete(actor=request.actor, organisation=request.organisation, relay_id=relay.pk)
        messages.success(request, f"The relay {relay.host} is removed.")
        return redirect("routing:relays", request.organisation.slug)

    return confirm_then_post(
        request, perform, title=f"Remove the relay {relay.host}:{relay.port}?",
        body="Mail it carried goes through the organisation's relay, the default one or "
             "direct to the recipients' servers.", button="Remove",
        cancel=reverse("routing:relays", args=[request.organisation.slug]), section="relays")


@operator_page
def relay_test_page(request, relay_id):
    """Send a test message through the relay; the page shows the relay's reply."""
    require_page_write(request)
    relay = relay_get(request.actor, request.organisation, relay_id)
    result, error = None, ""
    if request.method == "POST":
        try:
            result = relay_test(actor=request.actor, organisation=request.organisation,
                                relay_id=relay.pk, to=request.POST.get("to", ""))
        except Invalid as exc:
            error = exc.detail
    context = {"relay": relay, "result": result, "error": error, "section": "relays"}
    return render(request, "mail_admin/relay_test.html", context, status=422 if error else 200)


def _rows(items):
    now = dt.datetime.now(dt.UTC)
    rows = []
    for item in items:
        entry = item.entry
        arrived = dt.datetime.fromtimestamp(entry.arrival, dt.UTC)
        rows.append({
            "item": item, "entry": entry, "arrived": arrived, "age": now - arrived,
            "next": dt.datetime.fromtimestamp(entry.next_attempt, dt.UTC)
            if entry.next_attempt else None,
        })
    return rows


def _queue_filter(request) -> str | None:
    queue = request.GET.get("queue") or ""
    return queue if queue in QUEUES else None


@operator_page
def queue(request):
    """What the organisation's domains (or one: ?domain=) have waiting in the mail queue."""
    name = (request.GET.get("domain") or "").strip()[:253]
    domain = domain_get(request.actor, name, organisation=request.organisation) if name else None
    items = queue_list(request.actor, request.organisation, domain=domain,
                       queue=_queue_filter(request))
    names = domain_list(request.actor, organisation=request.organisation).values_list(
        "name", flat=True)
    context = {"rows": _rows(items), "domain": name, "queue": request.GET.get("queue") or "",
               "queues": QUEUES, "domains": list(names), "actions": ACTION_WORDS,
               "section": "queue"}
    return render(request, "mail_admin/queue.html", context)


@operator_page
def queue_action_page(request, queue_id, action):
    require_page_write(request)
    return _act(request, queue_id, action, organisation=request.organisation,
                back=reverse("routing:queue", args=[request.organisation.slug]))


@operator_page
def staff_queue(request):
    """Staff: every node's queue, bounces included."""
    items = queue_list_all(request.actor, queue=_queue_filter(request))
    context = {"rows": _rows(items), "queue": request.GET.get("queue") or "", "queues": QUEUES,
               "actions": ACTION_WORDS, "staff": True, "section": "queue"}
    return render(request, "mail_admin/queue.html", context)


@operator_page
def staff_queue_action_page(request, queue_id, action):
    if not request.actor.is_global:
        raise NotFound("That page was not found.")
    return _act(request, queue_id, action, organisation=None, back=reverse("routing_staff:queue"))


def _act(request, queue_id, action, *, organisation, back):
    if action not in ACTIONS:
        raise NotFound("That page was not found.")
    queued_get(request.actor, organisation, queue_id)  # the actor's, and still queued

    def perform():
        queue_act(actor=request.actor, organisation=organisation, queue_id=queue_id,
                  action=action)
        messages.success(request, f"{ACTION_WORDS[action]}: done for message {queue_id}.")
        return redirect(back)

    return confirm_then_post(
        request, perform, title=f"{ACTION_WORDS[action]} message {queue_id}?",
        body={"retry": "Postfix tries to deliver it now.",
              "hold": "Postfix stops trying until it is released.",
              "release": "Postfix takes it up again.",
              "delete": "It is removed from the queue: nobody receives it and its sender is "
                        "not told."}[action],
        button=ACTION_WORDS[action], danger=action == "delete", cancel=back, section="queue")


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
        "reports": tls_report_list(request.actor), "tlsrpt_from": settings.MAILHOST_TLSRPT_FROM,
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
