"""/mail-admin/ pages for a domain's inbound filtering: policy, sender lists, mail flow.

Thin: every write is one call into identity/inbound.py, as the API's routes are."""

from django import forms
from django.conf import settings
from django.contrib import messages
from django.shortcuts import redirect, render
from django.urls import reverse

from identity import inbound as services
from mailboxes.views import page_domain
from mailhost.errors import Conflict, Invalid, NotFound
from tenants.pages import confirm_then_post, operator_page


class PolicyForm(forms.Form):
    require_spf = forms.BooleanField(required=False, label="Require SPF pass",
                                     help_text="Refuse mail whose sending server the sender's "
                                               "domain does not authorise.")
    require_dkim = forms.BooleanField(required=False, label="Require DKIM pass")
    require_dmarc = forms.BooleanField(required=False, label="Require DMARC pass",
                                       help_text="Stricter than the senders' own DMARC policy.")
    greylisting = forms.BooleanField(required=False, label="Greylisting",
                                     help_text="Defer the first message of an unknown sender "
                                               "for a few minutes.")
    junk_score = forms.DecimalField(required=False, max_digits=6, decimal_places=2,
                                    label="Junk score", help_text="Empty: the default.")
    reject_score = forms.DecimalField(required=False, max_digits=6, decimal_places=2,
                                      label="Reject score", help_text="Empty: the default.")


class SenderForm(forms.Form):
    kind = forms.ChoiceField(choices=[("allow", "Allow"), ("block", "Block")])
    sender = forms.CharField(max_length=254, label="Sender",
                             help_text="user@example.com, or @example.com for a whole domain")
    mailbox = forms.CharField(max_length=254, required=False, label="For mailbox",
                              help_text="Empty: every address of the domain.")


def _url(request, domain) -> str:
    return reverse("mailboxes:inbound", args=[request.organisation.slug, domain.name])


def _page(request, domain, *, form=None, sender_form=None, status: int = 200):
    policy = services.inbound_policy_of(domain)
    state = services.policy_state(policy)
    days = services.flow_by_day(services.visible_flow_domains(
        request.actor, organisation=request.organisation, name=domain.name))
    context = {
        "domain": domain,
        "form": form or PolicyForm(initial=state),
        "sender_form": sender_form or SenderForm(),
        "rules": services.sender_rules_of(domain),
        "chart": services.flow_chart(days),
        "chart_id": "domain-flow",
        "defaults": (settings.MAILHOST_INBOUND_JUNK_SCORE, settings.MAILHOST_INBOUND_REJECT_SCORE),
        "breakers": services.breaker_status(request.actor, organisation=request.organisation),
        "section": "domains",
    }
    return render(request, "mail_admin/domain_inbound.html", context, status=status)


@operator_page
def inbound(request, name):
    domain = page_domain(request, name, write=request.method == "POST")
    if request.method != "POST":
        return _page(request, domain)
    form = PolicyForm(request.POST)
    if not form.is_valid():
        return _page(request, domain, form=form, status=422)
    try:
        services.inbound_policy_update(actor=request.actor, domain=domain, **form.cleaned_data)
    except Invalid as exc:
        form.add_error(exc.field if exc.field in form.fields else None, exc.detail)
        return _page(request, domain, form=form, status=exc.status)
    messages.success(request, "Inbound policy saved; the mail node applies it within seconds.")
    return redirect(_url(request, domain))


@operator_page
def inbound_sender_add(request, name):
    domain = page_domain(request, name, write=True)
    if request.method != "POST":
        return redirect(_url(request, domain))
    form = SenderForm(request.POST)
    if not form.is_valid():
        return _page(request, domain, sender_form=form, status=422)
    try:
        services.inbound_rule_add(actor=request.actor, domain=domain, **form.cleaned_data)
    except (Invalid, Conflict) as exc:
        form.add_error(exc.field if exc.field in form.fields else None, exc.detail)
        return _page(request, domain, sender_form=form, status=exc.status)
    messages.success(request, f"{form.cleaned_data['sender']} added.")
    return redirect(_url(request, domain) + "#senders")


@operator_page
def inbound_sender_remove(request, name, pk):
    domain = page_domain(request, name, write=True)
    rule = next((r for r in services.sender_rules_of(domain) if r.pk == pk), None)
    if rule is None:
        raise NotFound("That sender rule was not found.")

    def perform():
        services.inbound_rule_remove(actor=request.actor, domain=domain, rule_id=rule.pk)
        messages.success(request, f"{rule.sender} removed.")
        return redirect(_url(request, domain) + "#senders")

    return confirm_then_post(
        request, perform,
        title=f"Remove {rule.sender} from the {rule.get_kind_display().lower()} list?",
        body="Mail from this sender is filtered like any other again.", button="Remove",
        cancel=_url(request, domain), section="domains",
    )
