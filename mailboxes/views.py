"""/mail-admin/ pages for domains, mailboxes, aliases and bulk import/export.

Thin: read through selectors, write through services; a DomainError that is not about a form
field becomes a 404/403/409/422 page (tenants.pages.operator_page).
"""

import csv

from django.conf import settings
from django.contrib import messages
from django.http import HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from delivery.selectors import quota_usage as sending_usage
from identity import inbound
from identity.selectors import dns_overview, posture_summary, verification_record
from identity.services import domain_verify_now
from mailboxes import selectors, services
from mailboxes.forms import (
    AliasEditForm,
    AliasForm,
    DomainAddForm,
    DomainEditForm,
    ImportForm,
    MailboxCreateForm,
    MailboxEditForm,
    MailboxPasswordForm,
    lines,
)
from mailboxes.models import MailboxStatus
from mailboxes.services import moves
from mailhost.backend.certificates import MAIL_HOST
from mailhost.errors import Conflict, DomainError, Forbidden, Invalid, NotFound
from mailhost.keyset import keyset_page
from nodes.certificates import certificate_statuses
from nodes.models import DomainMove, MailNode
from tenants.pages import (
    confirm_then_post,
    form_errors_from,
    operator_page,
    paginate,
    require_page_write,
)
from tenants.selectors import audit_list, organisation_list


def page_domain(request, name: str, *, write: bool = False):
    """The organisation's domain `name` (another organisation's is a 404, like a missing one)."""
    domain = selectors.domain_get(request.actor, name, organisation=request.organisation)
    if domain.organisation_id != request.organisation.pk:
        raise NotFound("That domain was not found.")
    if write:
        require_page_write(request)
    return domain


def _mailbox(request, address: str, *, write: bool = False, include_deleted: bool = False):
    mailbox = selectors.mailbox_get(
        request.actor, address, include_deleted=include_deleted, organisation=request.organisation
    )
    if mailbox.domain.organisation_id != request.organisation.pk:
        raise NotFound("That mailbox was not found.")
    if write:
        require_page_write(request)
    return mailbox


def _alias(request, address: str, *, write: bool = False):
    alias = selectors.alias_get(request.actor, address, organisation=request.organisation)
    if alias.domain.organisation_id != request.organisation.pk:
        raise NotFound("That alias was not found.")
    if write:
        require_page_write(request)
    return alias


def _org_domains(request):
    return list(selectors.domain_list(request.actor, organisation=request.organisation))


def _render(request, template: str, context: dict, *, status: int = 200, section: str = ""):
    return render(request, template, {"section": section, **context}, status=status)


def _form_status(form) -> int:
    return 422 if form.errors else 200


def _waits(domain) -> str:
    """What to add to a "created" message when the address cannot work yet."""
    if domain.is_verified:
        return ""
    return (f" It goes live once the ownership of {domain.display_name} is verified "
            "(see the domain's page).")


def _no_store(response):
    # Pages that show a secret once must not be kept by the browser or a proxy.
    response["Cache-Control"] = "no-store"
    return response


# --- home, dashboard, search ---------------------------------------------------------------


@operator_page
def home(request):
    """/mail-admin/: the organisation chooser, or straight to the only one."""
    organisations = list(organisation_list(request.actor)[:2])
    if len(organisations) == 1:
        return redirect("mailboxes:dashboard", organisations[0].slug)
    page = paginate(request, organisation_list(request.actor))
    return render(request, "mail_admin/home.html", {"page": page})


@operator_page
def dashboard(request):
    org = request.organisation
    actor = request.actor
    domains = selectors.domain_list_with_counts(actor, organisation=org)
    counts = selectors.mailbox_counts(actor, organisation=org)
    shown = list(domains[:10])
    summary = posture_summary(d.pk for d in shown)
    context = {
        "domains": [(d, summary.get(d.pk)) for d in shown],
        "unverified": list(domains.filter(verified_at__isnull=True)[:20]),
        "domain_total": domains.count(),
        "counts": counts,
        "mailbox_total": sum(counts.values()),
        "events": audit_list(actor, org)[:10],
        "nodes": selectors.node_list(actor, organisation=org),
        # Inbound mail of the organisation's domains, and nodes whose greylisting fails open.
        "chart": inbound.flow_chart(inbound.flow_by_day(
            inbound.visible_flow_domains(actor, organisation=org))),
        "chart_id": "dashboard-flow",
        "breakers": inbound.breaker_status(actor, organisation=org),
    }
    # The mail host's certificate and those of this organisation's live domains, per node.
    names = {MAIL_HOST, *domains.values_list("name", flat=True)}
    context["nodes"] = list(context["nodes"])
    for node in context["nodes"]:
        node.certificates = [c for c in certificate_statuses(node) if c.name in names]
    return _render(request, "mail_admin/dashboard.html", context, section="dashboard")


@operator_page
def search(request):
    query = (request.GET.get("q") or "").strip()
    org = request.organisation
    context = {"query": query, "domains": [], "mailboxes": [], "aliases": []}
    if query:
        context["domains"] = selectors.domain_list(request.actor, organisation=org).filter(
            name__icontains=query.lower()
        )[:20]
        context["mailboxes"] = selectors.mailbox_list(
            request.actor, organisation=org, search=query
        )[:20]
        context["aliases"] = selectors.alias_list(request.actor, organisation=org, search=query)[
            :20
        ]
    return _render(request, "mail_admin/search.html", context)


# --- domains -----------------------------------------------------------------------------------


@operator_page
def domain_list(request):
    domains = selectors.domain_list_with_counts(request.actor, organisation=request.organisation)
    query = (request.GET.get("q") or "").strip().lower()
    if query:
        domains = domains.filter(name__icontains=query)
    page = paginate(request, domains)
    summary = posture_summary(d.pk for d in page)
    context = {"page": page, "rows": [(d, summary.get(d.pk)) for d in page], "q": query}
    return _render(request, "mail_admin/domains.html", context, section="domains")


@operator_page
def domain_add(request):
    require_page_write(request)
    staff = request.role == "staff"
    form = DomainAddForm(request.POST or None, staff=staff,
                         node_choices=selectors.node_choices() if staff else ())
    if request.method == "POST" and form.is_valid():
        try:
            domain = services.domain_create(
                actor=request.actor,
                organisation=request.organisation,
                name=form.cleaned_data["name"],
                max_mailboxes=form.cleaned_data.get("max_mailboxes"),
                default_quota_mb=form.cleaned_data["default_quota_mb"],
                node=form.cleaned_data.get("node") or None,
            )
        except (Invalid, Forbidden) as exc:
            form_errors_from(form, exc)
        except Conflict as exc:
            form_errors_from(form, exc)
        else:
            if domain.is_verified:
                messages.success(
                    request, f"{domain.display_name} added. Publish its DNS records next."
                )
            else:
                messages.warning(
                    request,
                    f"{domain.display_name} added, not live yet: publish its verification "
                    "record, then press Verify now.",
                )
            url = reverse("mailboxes:domain_dns", args=[request.organisation.slug, domain.name])
            return redirect(url + "?new=1")
    return _render(
        request, "mail_admin/domain_add.html", {"form": form}, status=_form_status(form),
        section="domains",
    )


@operator_page
def domain_detail(request, name):
    domain = page_domain(request, name)
    actor = request.actor
    mailboxes = selectors.mailbox_list(actor, domain=domain)
    aliases = selectors.alias_list(actor, domain=domain)
    context = {
        "domain": domain,
        "overview": dns_overview(actor, domain.name, organisation=request.organisation),
        "ownership_record": verification_record(domain),
        "posture": posture_summary([domain.pk]).get(domain.pk),
        "mailbox_page": paginate(request, mailboxes, per_page=20, param="mpage"),
        "alias_page": paginate(request, aliases, per_page=20, param="apage"),
        "catch_all": aliases.filter(local_part="").first(),
        "chart": inbound.flow_chart(inbound.flow_by_day([domain.name] if domain.verified_at
                                                        else [])),
        "chart_id": "domain-flow",
        "roles": selectors.role_routing(domain),
        "sending": sending_usage(domain),
    }
    if request.role == "staff":  # where it lives and how a move goes: the staff's business
        context["move"] = DomainMove.objects.select_related("source", "target").filter(
            domain_id=domain.pk).first()
        context["other_nodes"] = MailNode.objects.exclude(pk=domain.node_id)
    return _render(request, "mail_admin/domain.html", context, section="domains")


@operator_page
def domain_move(request, name):
    """Staff only: move the domain and its mail to another node, after a confirmation."""
    domain = page_domain(request, name)
    if request.role != "staff":
        raise Forbidden("Only the mail service's staff move a domain between nodes.")
    node = (request.POST.get("node") or "")[:50]
    back = reverse("mailboxes:domain", args=[request.organisation.slug, domain.name])

    def perform():
        try:
            moves.move_start(actor=request.actor, domain=domain, node=node)
        except DomainError as exc:
            messages.error(request, exc.detail)
        else:
            messages.success(request, f"{domain.display_name} is moving to {node}; its "
                             "progress is shown below.")
        return redirect(back)

    return confirm_then_post(
        request, perform, confirmed_by="confirmed", fields={"node": node, "confirmed": "1"},
        title=f"Move {domain.display_name} to {node}?",
        body="Its mail is copied to the other node while this one still serves it, then the "
        "domain switches over, what arrived meanwhile is copied too, and this node's copy is "
        "removed. No mail is lost; IMAP clients connected here are disconnected at the end. "
        "Update the domain's MX and the clients' server name to the new node afterwards.",
        button="Move the domain", cancel=back, section="domains", danger=False,
    )


@operator_page
def domain_edit(request, name):
    domain = page_domain(request, name, write=True)
    initial = {
        "status": domain.status,
        "max_mailboxes": domain.max_mailboxes,
        "default_quota_mb": domain.default_quota_mb,
        "role_target": domain.role_target,
    }
    form = DomainEditForm(request.POST or None, initial=initial, staff=request.role == "staff")
    if request.method == "POST" and form.is_valid():
        changes = dict(form.cleaned_data)
        if "max_mailboxes" not in request.POST:
            changes["max_mailboxes"] = ...  # not sent: unchanged (an empty field clears it)
        if "role_target" not in request.POST:
            changes["role_target"] = None  # likewise (empty: the automatic choice)
        try:
            services.domain_update(actor=request.actor, domain=domain, **changes)
        except Invalid as exc:
            form_errors_from(form, exc)
        else:
            messages.success(request, f"{domain.display_name} saved.")
            return redirect("mailboxes:domain", request.organisation.slug, domain.name)
    context = {"domain": domain, "form": form}
    return _render(
        request, "mail_admin/domain_edit.html", context, status=_form_status(form),
        section="domains",
    )


@operator_page
@require_POST
def domain_verify(request, name):
    """Verify now: look for the ownership TXT record (one DNS query) and say what was found."""
    domain = page_domain(request, name, write=True)
    try:
        domain = domain_verify_now(actor=request.actor, domain=domain)
    except DomainError as exc:
        messages.error(request, exc.detail)
    else:
        messages.success(
            request, f"{domain.display_name} is verified: it goes live on the mail server now."
        )
    return redirect("mailboxes:domain", request.organisation.slug, domain.name)


@operator_page
@require_POST
def domain_mark_verified(request, name):
    """Staff only: mark the domain verified without DNS proof (audited with the staff user)."""
    domain = page_domain(request, name)
    services.domain_mark_verified(actor=request.actor, domain=domain, method="staff")
    messages.success(request, f"{domain.display_name} marked verified; it goes live now.")
    return redirect("mailboxes:domain", request.organisation.slug, domain.name)


@operator_page
def domain_delete(request, name):
    domain = page_domain(request, name, write=True)

    def perform():
        services.domain_delete(actor=request.actor, domain=domain)
        messages.success(request, f"{domain.display_name} is no longer hosted here.")
        return redirect("mailboxes:domains", request.organisation.slug)

    return confirm_then_post(
        request,
        perform,
        title=f"Stop hosting {domain.display_name}?",
        body="Mail for this domain will be refused at once. A domain with mailboxes or aliases "
        "(deleted mailboxes included until they are purged) cannot be removed.",
        button="Stop hosting the domain",
        cancel=reverse("mailboxes:domain", args=[request.organisation.slug, domain.name]),
        section="domains",
    )



# --- mailboxes ---------------------------------------------------------------------------------


DOMAIN_CHOICES = 200  # domains offered as a list in the mailbox filter
# What a row of the mailbox list shows (mailboxes.html, includes/mailbox_status.html), and the
# keys of its cursors: the page reads these columns and no others.
LIST_ROW_FIELDS = ("local_part", "display_name", "status", "quota_mb", "created_at",
                   "deleted_at", "domain__name", "domain__verified_at")


@operator_page
def mailbox_list(request):
    org = request.organisation
    status = request.GET.get("status") or None
    if status not in (None, "deleted", *MailboxStatus.values):
        status = None
    domain = None
    if request.GET.get("domain"):
        domain = page_domain(request, request.GET["domain"])
    mailboxes = selectors.mailbox_list(
        request.actor, organisation=org, domain=domain, status=status,
        search=(request.GET.get("q") or "").strip() or None,
    )
    page = keyset_page(
        # The rows read only what a row shows (and the keys of the cursors).
        mailboxes.select_related(None).select_related("domain").only(*LIST_ROW_FIELDS),
        selectors.MAILBOX_ORDER, limit=settings.MAILHOST_PAGE_SIZE,
        after=request.GET.get("after") or None, before=request.GET.get("before") or None,
        field_name="page",
    )
    domains = selectors.domain_names(request.actor, organisation=org, limit=DOMAIN_CHOICES + 1)
    context = {
        "page": page,
        # A choice list while it is short; past that, the filter is a typed domain name.
        "domains": domains if len(domains) <= DOMAIN_CHOICES else None,
        "statuses": [*MailboxStatus.choices, ("deleted", "Deleted (restorable)")],
        "filters": {"q": request.GET.get("q", ""), "status": status or "",
                    "domain": domain.name if domain else ""},
    }
    return _render(request, "mail_admin/mailboxes.html", context, section="mailboxes")


@operator_page
def mailbox_create(request):
    require_page_write(request)
    domains = _org_domains(request)
    initial = {"domain": request.GET.get("domain")}
    form = MailboxCreateForm(request.POST or None, domains=domains, initial=initial)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            mailbox, generated = services.mailbox_create(
                actor=request.actor,
                domain=page_domain(request, data["domain"]),
                local_part=data["local_part"],
                password=data["password"] or None,
                display_name=data["display_name"],
                quota_mb=data["quota_mb"],
            )
        except (Invalid, Conflict) as exc:
            form_errors_from(form, exc, {"address": "local_part"})
        else:
            messages.success(request, f"{mailbox.address} created.{_waits(mailbox.domain)}")
            if generated is None:
                return redirect("mailboxes:mailbox", request.organisation.slug, mailbox.address)
            return _show_password(request, mailbox, generated, created=True)
    if not domains:
        messages.info(request, "Add a domain first: mailboxes live on a domain.")
    return _render(
        request, "mail_admin/mailbox_new.html", {"form": form, "domains": domains},
        status=_form_status(form), section="mailboxes",
    )


def _show_password(request, mailbox, password, *, created=False):
    context = {"mailbox": mailbox, "password": password, "created": created}
    return _no_store(
        _render(request, "mail_admin/mailbox_password_shown.html", context, section="mailboxes")
    )


@operator_page
def mailbox_detail(request, address):
    mailbox = _mailbox(request, address, include_deleted=True)
    form = MailboxEditForm(
        request.POST or None,
        initial={"display_name": mailbox.display_name, "quota_mb": mailbox.quota_mb},
    )
    if request.method == "POST":
        require_page_write(request)
        if form.is_valid():
            try:
                services.mailbox_update(actor=request.actor, mailbox=mailbox, **form.cleaned_data)
            except Invalid as exc:
                form_errors_from(form, exc)
            else:
                messages.success(request, f"{mailbox.address} saved.")
                return redirect("mailboxes:mailbox", request.organisation.slug, mailbox.address)
    context = {
        "mailbox": mailbox,
        "form": form,
        "app_passwords": selectors.app_password_list(request.actor, mailbox)[:50],
    }
    return _render(
        request, "mail_admin/mailbox.html", context, status=_form_status(form), section="mailboxes"
    )


@operator_page
def mailbox_password(request, address):
    mailbox = _mailbox(request, address, write=True)
    form = MailboxPasswordForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            generated = services.mailbox_set_password(
                actor=request.actor, mailbox=mailbox, password=form.cleaned_data["password"] or None
            )
        except Invalid as exc:
            form_errors_from(form, exc)
        else:
            if generated:
                return _show_password(request, mailbox, generated)
            messages.success(request, f"The password of {mailbox.address} was changed.")
            return redirect("mailboxes:mailbox", request.organisation.slug, mailbox.address)
    context = {"mailbox": mailbox, "form": form}
    return _render(
        request, "mail_admin/mailbox_password.html", context, status=_form_status(form),
        section="mailboxes",
    )


STATUS_WORDS = {
    "suspended": ("Suspend", "It keeps receiving mail, but nobody can sign in to it."),
    "disabled": ("Disable", "Nobody can sign in, and mail to it is refused."),
    "active": ("Reactivate", "Sign-in and delivery work again."),
}


@operator_page
def mailbox_status(request, address):
    mailbox = _mailbox(request, address, write=True)
    status = request.POST.get("status") or request.GET.get("status") or ""
    if status not in STATUS_WORDS:
        raise Invalid(f"Status is one of {', '.join(STATUS_WORDS)}.", field="status")

    def perform():
        services.mailbox_set_status(actor=request.actor, mailbox=mailbox, status=status)
        messages.success(request, f"{mailbox.address} is now {status}.")
        return redirect("mailboxes:mailbox", request.organisation.slug, mailbox.address)

    verb, effect = STATUS_WORDS[status]
    return confirm_then_post(
        request,
        perform,
        confirmed_by="confirmed",
        title=f"{verb} {mailbox.address}?",
        body=effect,
        button=verb,
        cancel=reverse("mailboxes:mailbox", args=[request.organisation.slug, mailbox.address]),
        section="mailboxes",
        danger=status != "active",
        fields={"status": status, "confirmed": "1"},
    )


@operator_page
def mailbox_delete(request, address):
    mailbox = _mailbox(request, address, write=True)

    def perform():
        services.mailbox_delete(actor=request.actor, mailbox=mailbox)
        messages.success(request, f"{mailbox.address} was deleted. It can be restored for a while.")
        return redirect("mailboxes:mailboxes", request.organisation.slug)

    return confirm_then_post(
        request,
        perform,
        title=f"Delete {mailbox.address}?",
        body="The address stops working at once. Its mail is archived and the mailbox can be "
        "restored until the retention period ends; after that it is gone for good.",
        button="Delete mailbox",
        cancel=reverse("mailboxes:mailbox", args=[request.organisation.slug, mailbox.address]),
        section="mailboxes",
    )


@operator_page
def mailbox_restore(request, address):
    mailbox = _mailbox(request, address, write=True, include_deleted=True)

    def perform():
        services.mailbox_restore(actor=request.actor, mailbox=mailbox)
        messages.success(request, f"{mailbox.address} was restored.")
        return redirect("mailboxes:mailbox", request.organisation.slug, mailbox.address)

    return confirm_then_post(
        request,
        perform,
        title=f"Restore {mailbox.address}?",
        body="The address works again with its archived mail and its old password.",
        button="Restore mailbox",
        cancel=reverse("mailboxes:mailbox", args=[request.organisation.slug, mailbox.address]),
        section="mailboxes",
        danger=False,
    )


@operator_page
def app_password_revoke(request, address, pk):
    mailbox = _mailbox(request, address, write=True)
    app_password = selectors.app_password_get(request.actor, mailbox, pk)
    back = reverse("mailboxes:mailbox", args=[request.organisation.slug, mailbox.address])

    def perform():
        services.app_password_revoke(actor=request.actor, app_password=app_password)
        messages.success(request, f"The app password “{app_password.name}” was revoked.")
        return redirect(back)

    return confirm_then_post(
        request,
        perform,
        title=f"Revoke the app password “{app_password.name}”?",
        body="The device using it can no longer sign in until it gets a new password.",
        button="Revoke", cancel=back, section="mailboxes",
    )


# --- CSV export and import ---------------------------------------------------------------------

EXPORT_COLUMNS = [
    "address", "display_name", "status", "quota_mb", "forward_to", "vacation", "created_at",
]


class _Echo:
    def write(self, value):
        return value


def _cell(value) -> str:
    # A cell that a spreadsheet would run as a formula is prefixed so it stays text.
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


@operator_page
def mailbox_export(request):
    """Every live mailbox of the organisation as CSV, streamed (constant memory)."""
    mailboxes = selectors.mailbox_list(request.actor, organisation=request.organisation)
    writer = csv.writer(_Echo())

    def rows():
        yield writer.writerow(EXPORT_COLUMNS)
        for m in mailboxes.iterator(chunk_size=2000):
            yield writer.writerow([_cell(v) for v in (
                m.address, m.display_name, m.status, m.quota_mb, " ".join(m.forward_to),
                "on" if m.vacation_enabled else "off", m.created_at.isoformat(),
            )])

    response = StreamingHttpResponse(rows(), content_type="text/csv; charset=utf-8")
    filename = f"mailboxes-{request.organisation.slug}.csv"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@operator_page
def mailbox_import(request):
    require_page_write(request)
    form = ImportForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        upload = form.cleaned_data["file"]
        try:
            job = services.mailbox_import_start(
                actor=request.actor, organisation=request.organisation,
                filename=upload.name, content=upload.read(),
            )
        except Invalid as exc:
            form_errors_from(form, exc)
        else:
            return redirect("mailboxes:import", request.organisation.slug, job.pk)
    imports = selectors.mailbox_import_list(request.actor, organisation=request.organisation)
    context = {"form": form, "page": paginate(request, imports, per_page=10)}
    return _render(
        request, "mail_admin/import.html", context, status=_form_status(form), section="mailboxes"
    )


@operator_page
def mailbox_import_detail(request, pk):
    job = selectors.mailbox_import_get(request.actor, organisation=request.organisation,
                                       import_id=pk)
    context = {"job": job, "error_page": paginate(request, job.errors, per_page=100)}
    if request.headers.get("X-Requested-With") == "fetch":
        return render(request, "mail_admin/import_progress.html", context)
    return _render(request, "mail_admin/import_detail.html", context, section="mailboxes")


@operator_page
@require_POST
def mailbox_import_passwords(request, pk):
    require_page_write(request)
    job = selectors.mailbox_import_get(request.actor, organisation=request.organisation,
                                       import_id=pk)
    generated = services.mailbox_import_take_generated(actor=request.actor, mailbox_import=job)
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="import-{job.pk}-passwords.csv"'
    writer = csv.writer(response)
    writer.writerow(["address", "password"])
    writer.writerows(generated)
    return _no_store(response)


# --- aliases -----------------------------------------------------------------------------------


@operator_page
def alias_list(request):
    org = request.organisation
    aliases = selectors.alias_list(
        request.actor, organisation=org, search=(request.GET.get("q") or "").strip() or None
    )
    context = {"page": paginate(request, aliases), "q": request.GET.get("q", "")}
    return _render(request, "mail_admin/aliases.html", context, section="aliases")


@operator_page
def alias_create(request):
    require_page_write(request)
    domains = _org_domains(request)
    form = AliasForm(request.POST or None, domains=domains,
                     initial={"domain": request.GET.get("domain"),
                              "local_part": request.GET.get("local_part", "")})
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            alias = services.alias_create(
                actor=request.actor, domain=page_domain(request, data["domain"]),
                local_part=data["local_part"].strip(), destinations=lines(data["destinations"]),
            )
        except (Invalid, Conflict) as exc:
            form_errors_from(form, exc, {"address": "local_part"})
        else:
            messages.success(request, f"{alias.address} created.{_waits(alias.domain)}")
            return redirect("mailboxes:aliases", request.organisation.slug)
    return _render(
        request, "mail_admin/alias_form.html", {"form": form, "domains": domains},
        status=_form_status(form), section="aliases",
    )


@operator_page
def alias_edit(request, address):
    alias = _alias(request, address)
    form = AliasEditForm(
        request.POST or None,
        initial={"destinations": "\n".join(alias.destinations), "active": alias.active},
    )
    if request.method == "POST":
        require_page_write(request)
        if form.is_valid():
            try:
                services.alias_update(
                    actor=request.actor, alias=alias,
                    destinations=lines(form.cleaned_data["destinations"]),
                    active=form.cleaned_data["active"],
                )
            except Invalid as exc:
                form_errors_from(form, exc)
            else:
                messages.success(request, f"{alias.address} saved.")
                return redirect("mailboxes:aliases", request.organisation.slug)
    return _render(
        request, "mail_admin/alias_form.html", {"form": form, "alias": alias},
        status=_form_status(form), section="aliases",
    )


@operator_page
def alias_delete(request, address):
    alias = _alias(request, address, write=True)

    def perform():
        services.alias_delete(actor=request.actor, alias=alias)
        messages.success(request, f"{alias.address} was deleted.")
        return redirect("mailboxes:aliases", request.organisation.slug)

    what = "catch-all" if alias.is_catch_all else "alias"
    return confirm_then_post(
        request,
        perform,
        title=f"Delete the {what} {alias.address}?",
        body="Mail to this address will be refused from now on.",
        button=f"Delete {what}",
        cancel=reverse("mailboxes:alias", args=[request.organisation.slug, alias.address]),
        section="aliases",
    )
