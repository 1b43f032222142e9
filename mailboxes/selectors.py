"""Reads for domains, mailboxes and aliases, scoped to what the actor may see.

Another organisation's object raises NotFound, exactly like a missing one.
"""

from collections.abc import Iterable
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import caches
from django.db.models import Count, F, IntegerField, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce

from mailboxes.models import (
    Alias,
    AppPassword,
    Domain,
    DomainStatus,
    Mailbox,
    MailboxImport,
    MailNode,
)
from mailhost.backend.render import ROLE_LOCAL_PARTS
from mailhost.errors import NotFound
from mailhost.names import (
    HOSTED_LOCAL_PART,
    InvalidName,
    domain_for_display,
    normalise_domain,
    split_address,
)
from nodes.moves import held_domain_ids
from tenants.access import Actor, require_read, require_write, visible_organisations
from tenants.models import WRITE_ROLES, Membership

HOSTS_CACHE = "hosts"  # a small per-process cache (settings.CACHES), not the shared Redis one


def domain_list(actor: Actor, *, organisation=None) -> QuerySet[Domain]:
    domains = Domain.objects.select_related("organisation", "node")
    if not actor.is_global:
        domains = domains.filter(organisation__in=visible_organisations(actor))
    if organisation is not None:
        domains = domains.filter(organisation=organisation)
    return domains.order_by("name")


@dataclass(frozen=True)
class DomainName:
    """A domain as a choice list shows it: its stored (A-label) name and its display form."""

    name: str

    @property
    def display_name(self) -> str:
        return domain_for_display(self.name)


def domain_names(actor: Actor, *, organisation=None, limit: int) -> list[DomainName]:
    """The first `limit` of the actor's domain names in name order (one query reading the
    names alone: no rows of their organisations or nodes)."""
    names = domain_list(actor, organisation=organisation).select_related(None)
    return [DomainName(name) for name in names.values_list("name", flat=True)[:limit]]


# Several organisations may claim one name; only one claim is verified. Someone who sees more
# than one claim (staff, a member of several organisations) gets the verified one first.
_VERIFIED_FIRST = (F("verified_at").asc(nulls_last=True), "created_at", "id")


def domain_get(actor: Actor, name: str, *, organisation=None) -> Domain:
    """The actor's domain `name`; with `organisation`, that organisation's claim on it."""
    try:
        ascii_name = normalise_domain(name)
    except InvalidName:
        raise NotFound("That domain was not found.") from None
    domains = domain_list(actor, organisation=organisation).filter(name=ascii_name)
    domain = domains.order_by(*_VERIFIED_FIRST).first()
    if domain is None:
        raise NotFound("That domain was not found.")
    return domain


def domain_get_for_write(actor: Actor, name: str, *, organisation=None) -> Domain:
    domain = domain_get(actor, name, organisation=organisation)
    require_write(actor, domain.organisation_id, "That domain")
    return domain


def domain_verified_owner(ascii_name: str) -> Domain | None:
    """The verified claim on a name, whoever holds it. No actor: for the services' rules
    (which name is free, which is inside another tenant's domain), never shown to a tenant."""
    return Domain.objects.filter(name=ascii_name, verified_at__isnull=False).first()


def domain_verified_parent(ascii_name: str) -> Domain | None:
    """The verified domain that `ascii_name` lies below (the nearest), if any. One query on
    the indexed name, whatever the number of domains."""
    labels = ascii_name.split(".")
    parents = [".".join(labels[i:]) for i in range(1, len(labels) - 1)]
    if not parents:
        return None
    found = Domain.objects.filter(name__in=parents, verified_at__isnull=False)
    return max(found, key=lambda d: len(d.name), default=None)


def mailbox_list(
    actor: Actor,
    *,
    organisation=None,
    domain: Domain | None = None,
    status: str | None = None,
    search: str | None = None,
    include_deleted: bool = False,
) -> QuerySet[Mailbox]:
    mailboxes = Mailbox.objects.select_related("domain", "domain__organisation")
    if not actor.is_global:
        mailboxes = mailboxes.filter(domain__organisation__in=visible_organisations(actor))
    if organisation is not None:
        mailboxes = mailboxes.filter(domain__organisation=organisation)
    if domain is not None:
        mailboxes = mailboxes.filter(domain=domain)
    if status == "deleted":
        mailboxes = mailboxes.exclude(deleted_at=None)
    elif not include_deleted:
        mailboxes = mailboxes.filter(deleted_at=None)
    if status and status != "deleted":
        mailboxes = mailboxes.filter(status=status)
    if search:
        mailboxes = _search_address(mailboxes, search)
    return mailboxes.order_by(*MAILBOX_ORDER)


# The mailbox lists' order: by address, the id breaking ties (a deleted and a live mailbox
# can share one); keyset pagination seeks on these keys.
MAILBOX_ORDER = ("domain__name", "local_part", "id")


def _search_address(queryset, search: str):
    term = search.strip().lower()
    if "@" in term:
        local, _, domain = term.partition("@")
        return queryset.filter(local_part__startswith=local, domain__name__startswith=domain)
    if queryset.model is Mailbox:
        return queryset.filter(Q(local_part__contains=term) | Q(display_name__icontains=term))
    return queryset.filter(local_part__contains=term)


def mailbox_get(
    actor: Actor, address: str, *, include_deleted: bool = False, organisation=None
) -> Mailbox:
    """The live mailbox at `address`; with include_deleted, the most recently deleted one too.
    With `organisation`, that organisation's (another may hold a claim on the same name)."""
    try:
        local_part, domain_name = split_address(address)
    except InvalidName:
        raise NotFound("That mailbox was not found.") from None
    mailboxes = mailbox_list(
        actor, organisation=organisation, include_deleted=include_deleted
    ).filter(local_part=local_part, domain__name=domain_name)
    # The live one (deleted_at NULL) first, then the most recently deleted; a verified
    # domain's before a mere claim's.
    mailbox = mailboxes.order_by(
        F("deleted_at").desc(nulls_first=True), F("domain__verified_at").asc(nulls_last=True)
    ).first()
    if mailbox is None:
        raise NotFound("That mailbox was not found.")
    return mailbox


def alias_list(
    actor: Actor, *, organisation=None, domain: Domain | None = None, search: str | None = None
) -> QuerySet[Alias]:
    aliases = Alias.objects.select_related("domain", "domain__organisation")
    if not actor.is_global:
        aliases = aliases.filter(domain__organisation__in=visible_organisations(actor))
    if organisation is not None:
        aliases = aliases.filter(domain__organisation=organisation)
    if domain is not None:
        aliases = aliases.filter(domain=domain)
    if search:
        aliases = _search_address(aliases, search)
    return aliases.order_by("domain__name", "local_part", "id")


def alias_get(actor: Actor, address: str, *, organisation=None) -> Alias:
    """`user@domain`, or `@domain` for the catch-all (with `organisation`: that one's)."""
    raw = (address or "").strip()
    try:
        if raw.startswith("@"):
            local_part, domain_name = "", normalise_domain(raw[1:])
        else:
            local_part, domain_name = split_address(raw)
    except InvalidName:
        raise NotFound("That alias was not found.") from None
    aliases = alias_list(actor, organisation=organisation).filter(
        local_part=local_part, domain__name=domain_name
    )
    alias = aliases.order_by(F("domain__verified_at").asc(nulls_last=True)).first()
    if alias is None:
        raise NotFound("That alias was not found.")
    return alias


# --- role addresses (postmaster@, abuse@) ------------------------------------------------


def first_admin_addresses(organisation_ids: Iterable[int] | None) -> dict[int, str]:
    """{organisation: its first admin's (or owner's) e-mail address}, where that address could
    be a mailbox hosted here (the hosted grammar): the automatic target of its role addresses.
    The node checks that it is a live mailbox, and uses the operator mailbox if not."""
    members = Membership.objects.filter(role__in=WRITE_ROLES)
    if organisation_ids is not None:
        members = members.filter(organisation_id__in=list(organisation_ids))
    first: dict[int, str] = {}
    rows = members.order_by("organisation_id", "created_at", "pk").values_list(
        "organisation_id", "user__email"
    )
    for organisation_id, email in rows:
        if organisation_id not in first:
            first[organisation_id] = hosted_address_or_blank(email)
    return first


def hosted_address_or_blank(raw: str) -> str:
    """`raw` lower-cased if it could be a hosted address, else "" (a user's e-mail address is
    free text; only the hosted grammar may reach the node)."""
    local, _, domain = (raw or "").strip().lower().rpartition("@")
    try:
        if HOSTED_LOCAL_PART.match(local):
            return f"{local}@{normalise_domain(domain)}"
    except InvalidName:
        pass
    return ""


def _live_domain(**scope) -> Q:
    return Q(domain__status="active", domain__verified_at__isnull=False,
             **{f"domain__{name}": value for name, value in scope.items()})


def _receives(local: str, domain_scope: Q) -> bool:
    """A mailbox that receives, or an alias, at `local` in a live domain: what the node's
    role query counts as a target that can receive."""
    return (
        Mailbox.objects.filter(domain_scope, local_part=local, deleted_at=None,
                               status__in=("active", "suspended")).exists()
        or Alias.objects.filter(domain_scope, local_part=local, active=True).exists()
    )


def address_receives(organisation_id: int, address: str) -> bool:
    """Whether `address` is a mailbox that receives, or an active alias, in one of the
    organisation's active, verified domains: what a role target may be. Another tenant's
    addresses are never looked at, so the answer tells nobody what others host."""
    try:
        local, domain = split_address(address)
    except InvalidName:
        return False
    return _receives(local, _live_domain(organisation_id=organisation_id, name=domain))


def report_address_problem(organisation_id: int, address: str) -> str | None:
    """Why mail to `address` (a DMARC/TLS-RPT report address the organisation publishes)
    would bounce, if it is in one of the organisation's own domains and would; else None.
    Addresses elsewhere are not the organisation's to check (nor ours to reveal)."""
    local, _, domain = address.partition("@")
    if not Domain.objects.filter(organisation_id=organisation_id, name=domain).exists():
        return None
    local = local.split("+", 1)[0]  # Postfix delivers name+tag@ to name@
    scope = Q(domain__organisation_id=organisation_id, domain__name=domain)
    if local in settings.MAILHOST_REPORT_INTAKE_LOCAL_PARTS:
        return None  # the report intake (reports/), at every hosted domain
    if local in ROLE_LOCAL_PARTS or _receives(local, scope) or _receives("", scope):
        return None  # a role address, a mailbox, an alias, or the domain's catch-all
    return (
        f"{address} would bounce: it is no mailbox or alias of this organisation. Create it "
        f"first, or use postmaster@{domain}, which every hosted domain accepts."
    )


@dataclass(frozen=True)
class RoleRouting:
    """Where a domain's role addresses go now, as the mail node decides it."""

    addresses: tuple[str, ...]  # postmaster@…, abuse@…
    own: tuple[str, ...]  # those a mailbox or alias of the domain holds itself (they win)
    target: str  # where the others go; "" when nowhere
    source: str  # "chosen", "first admin", "operator" or "none"
    chosen_unavailable: bool  # a chosen target that no longer receives (the fallback is used)


def role_routing(domain: Domain) -> RoleRouting:
    addresses = tuple(f"{local}@{domain.name}" for local in ROLE_LOCAL_PARTS)
    held = {
        *domain.mailboxes.filter(local_part__in=ROLE_LOCAL_PARTS, deleted_at=None)
        .values_list("local_part", flat=True),
        *domain.aliases.filter(local_part__in=ROLE_LOCAL_PARTS).values_list("local_part",
                                                                           flat=True),
    }
    own = tuple(a for a in addresses if a.partition("@")[0] in held)
    chosen = domain.role_target
    candidate = chosen or first_admin_addresses([domain.organisation_id]).get(
        domain.organisation_id, ""
    )
    local, _, name = candidate.partition("@")
    if candidate and _receives(local, _live_domain(name=name)):
        return RoleRouting(addresses, own, candidate, "chosen" if chosen else "first admin",
                           False)
    operator = settings.MAILHOST_OPERATOR_MAILBOX
    return RoleRouting(addresses, own, operator, "operator" if operator else "none",
                       bool(chosen))


# --- pages: dashboard counts, mailbox holders, imports ------------------------------------


def domain_list_with_counts(actor: Actor, *, organisation) -> QuerySet[Domain]:
    """Domains with `mailbox_count` and `alias_count` in the same query (subqueries, no join
    fan-out), for the dashboard and the domain list."""
    live = Mailbox.objects.filter(domain=OuterRef("pk"), deleted_at=None)
    aliases = Alias.objects.filter(domain=OuterRef("pk"))
    return domain_list(actor, organisation=organisation).annotate(
        mailbox_count=_count(live), alias_count=_count(aliases)
    )


def _count(queryset):
    counted = queryset.order_by().values("domain").annotate(n=Count("pk")).values("n")
    return Coalesce(Subquery(counted, output_field=IntegerField()), 0)


def mailbox_counts(actor: Actor, *, organisation) -> dict[str, int]:
    """How many live mailboxes of the organisation are in each status (one query)."""
    rows = (
        mailbox_list(actor, organisation=organisation)
        .order_by()
        .values("status")
        .annotate(n=Count("pk"))
    )
    return {row["status"]: row["n"] for row in rows}


def node_list(actor: Actor, *, organisation) -> QuerySet[MailNode]:
    """The mail nodes serving the organisation's domains, for the stack health panel."""
    domains = domain_list(actor, organisation=organisation)
    return MailNode.objects.filter(pk__in=domains.values("node_id")).order_by("name")


def mailbox_for_login(address: str) -> Mailbox | None:
    """The mailbox that may sign in to /mailbox/ at `address`: live, active, on an active
    domain. No actor: this is how a mailbox holder becomes one."""
    try:
        local_part, domain_name = split_address(address)
    except InvalidName:
        return None
    return _can_login(Mailbox.objects.filter(local_part=local_part, domain__name=domain_name))


def mailbox_for_session(mailbox_id: int) -> Mailbox | None:
    """The signed-in holder's mailbox, if it may still sign in (suspension ends the session)."""
    return _can_login(Mailbox.objects.filter(pk=mailbox_id))


def _can_login(mailboxes: QuerySet[Mailbox]) -> Mailbox | None:
    # Only on a verified domain: a mailbox prepared on a mere claim (maybe on someone else's
    # name) is not live anywhere, the portal included.
    return (
        mailboxes.filter(live_domain_q("domain__"), deleted_at=None, status="active")
        .select_related("domain", "domain__organisation")
        .first()
    )


def _require_mailbox_read(actor: Actor, mailbox: Mailbox) -> None:
    if actor.mailbox is not None:
        if actor.mailbox.pk != mailbox.pk:
            raise NotFound("That mailbox was not found.")
        return
    require_read(actor, mailbox.domain.organisation_id, "That mailbox")


def app_password_list(actor: Actor, mailbox: Mailbox) -> QuerySet[AppPassword]:
    _require_mailbox_read(actor, mailbox)
    return mailbox.app_passwords.order_by("revoked_at", "-created_at", "-id")


def app_password_get(actor: Actor, mailbox: Mailbox, app_password_id: int) -> AppPassword:
    app_password = app_password_list(actor, mailbox).filter(pk=app_password_id).first()
    if app_password is None:
        raise NotFound("That app password was not found.")
    app_password.mailbox = mailbox
    return app_password


def mailbox_import_list(actor: Actor, *, organisation) -> QuerySet[MailboxImport]:
    require_read(actor, organisation.pk, "That organisation")
    return MailboxImport.objects.filter(organisation=organisation).order_by("-created_at", "-id")


def mailbox_import_get(actor: Actor, *, organisation, import_id: int) -> MailboxImport:
    job = mailbox_import_list(actor, organisation=organisation).filter(pk=import_id).first()
    if job is None:
        raise NotFound("That import was not found.")
    return job


# --- hosted domains: the public, anonymous reads ------------------------------------------------

# The service hosts a hosted domain points at the portal (CNAME): MTA-STS policy, Thunderbird
# autoconfig, Outlook autodiscover.
SERVICE_HOST_LABELS = ("mta-sts", "autoconfig", "autodiscover")


def live_domain_q(prefix: str = "") -> Q:
    """The one definition of a domain this install serves: active, ownership verified, of an
    organisation that is not suspended. The node snapshot (routing, logins, signing), the
    mailbox portal's sign-in and everything public (service hosts, MTA-STS policy, BIMI logo,
    autoconfig) filter with it, so what "hosted" means is decided here only. A mere claim
    (unverified) serves nothing: answering for it would tell the world the name is hosted here.
    `prefix`: "domain__" to filter mailboxes, aliases or keys by their domain."""
    return Q(**{
        f"{prefix}status": DomainStatus.ACTIVE,
        f"{prefix}verified_at__isnull": False,
        f"{prefix}organisation__suspended_at__isnull": True,
    })


def hosted_domains() -> QuerySet[Domain]:
    return Domain.objects.filter(live_domain_q())


def hosted_domain(ascii_name: str) -> Domain | None:
    """A hosted domain by its A-label name: public information (it has our MX)."""
    return hosted_domains().filter(name=ascii_name).first()


@dataclass(frozen=True)
class ServiceHost:
    label: str  # one of SERVICE_HOST_LABELS
    domain: str  # the hosted domain, A-label


def hosted_domain_for_host(host: str) -> ServiceHost | None:
    """`autoconfig.example.com` → ServiceHost("autoconfig", "example.com") when example.com is
    hosted here; None for every other name. `host` is a Host header's name, without the port.

    One indexed lookup, remembered for MAILHOST_HOSTED_DOMAIN_CACHE_SECONDS in this process
    (answers for unknown names too, so a flood of one bogus name costs one query); a domain or
    organisation saved here forgets them at once (mailboxes.apps).
    """
    label, _, rest = (host or "").lower().rstrip(".").partition(".")
    if label not in SERVICE_HOST_LABELS:
        return None
    key = f"service-host:{label}.{rest}"[:250]
    cache = caches[HOSTS_CACHE]
    found = cache.get(key)
    if found is None:
        try:
            name = normalise_domain(rest)
        except InvalidName:
            name = None
        hosted = name is not None and hosted_domains().filter(name=name).exists()
        found = name if hosted else ""
        cache.set(key, found, settings.MAILHOST_HOSTED_DOMAIN_CACHE_SECONDS)
    return ServiceHost(label, found) if found else None


def forget_hosted_hosts(**_signal) -> None:
    caches[HOSTS_CACHE].clear()


def addresses_outside_hosted_grammar() -> list[tuple[str, str, str]]:
    """(kind, address, organisation slug) of every live mailbox and alias whose local part
    predates the hosted grammar (mailhost.names.HOSTED_LOCAL_PART) and so cannot be served:
    the renderer refuses them. Staff-wide: for the operator's `checkaddresses` command."""
    found = []
    for kind, queryset in (
        ("mailbox", Mailbox.objects.filter(deleted_at=None)),
        ("alias", Alias.objects.exclude(local_part="")),  # '' is the catch-all
    ):
        rows = queryset.values_list("local_part", "domain__name", "domain__organisation__slug")
        for local_part, domain_name, slug in rows.order_by("domain__name", "local_part"):
            if not HOSTED_LOCAL_PART.match(local_part):
                found.append((kind, f"{local_part}@{domain_name}", slug))
    return found


def node_choices() -> list[tuple[str, str]]:
    """(name, label with its domain count) of every mail node: the staff's domain form."""
    nodes = MailNode.objects.annotate(domain_count=Count("domains")).order_by("name")
    return [(n.name, f"{n.name} ({n.domain_count} domain{'s' if n.domain_count != 1 else ''})")
            for n in nodes]


def held_on_node_q(node, prefix: str = "") -> Q:
    """The domains whose mail state `node` holds: its own, and those moving to or from it while
    both nodes need the mailboxes (nodes.moves). `prefix`: "domain__" to filter mailboxes or
    aliases by their domain, "mailbox__domain__" for app passwords."""
    own = Q(**{f"{prefix}node": node})
    moving = held_domain_ids(node)
    return own | Q(**{f"{prefix}pk__in": moving}) if moving else own
