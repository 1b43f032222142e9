"""Reads for domains, mailboxes and aliases, scoped to what the actor may see.

Another organisation's object raises NotFound, exactly like a missing one.
"""

from django.db.models import Q, QuerySet

from mailboxes.models import Alias, Domain, Mailbox
from mailhost.errors import NotFound
from mailhost.names import InvalidName, normalise_domain, split_address
from tenants.access import Actor, require_write, visible_organisations


def domain_list(actor: Actor, *, organisation=None) -> QuerySet[Domain]:
    domains = Domain.objects.select_related("organisation", "node")
    if not actor.is_global:
        domains = domains.filter(organisation__in=visible_organisations(actor))
    if organisation is not None:
        domains = domains.filter(organisation=organisation)
    return domains.order_by("name")


def domain_get(actor: Actor, name: str) -> Domain:
    try:
        ascii_name = normalise_domain(name)
    except InvalidName:
        raise NotFound("That domain was not found.") from None
    domain = domain_list(actor).filter(name=ascii_name).first()
    if domain is None:
        raise NotFound("That domain was not found.")
    return domain


def domain_get_for_write(actor: Actor, name: str) -> Domain:
    domain = domain_get(actor, name)
    require_write(actor, domain.organisation_id, "That domain")
    return domain


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
    return mailboxes.order_by("domain__name", "local_part", "id")


def _search_address(queryset, search: str):
    term = search.strip().lower()
    if "@" in term:
        local, _, domain = term.partition("@")
        return queryset.filter(local_part__startswith=local, domain__name__startswith=domain)
    if queryset.model is Mailbox:
        return queryset.filter(Q(local_part__contains=term) | Q(display_name__icontains=term))
    return queryset.filter(local_part__contains=term)


def mailbox_get(actor: Actor, address: str, *, include_deleted: bool = False) -> Mailbox:
    """The live mailbox at `address`; with include_deleted, the most recently deleted one too."""
    try:
        local_part, domain_name = split_address(address)
    except InvalidName:
        raise NotFound("That mailbox was not found.") from None
    mailboxes = mailbox_list(actor, include_deleted=include_deleted).filter(
        local_part=local_part, domain__name=domain_name
    )
    mailbox = mailboxes.order_by("deleted_at").first()  # live (NULL) first
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


def alias_get(actor: Actor, address: str) -> Alias:
    """`user@domain`, or `@domain` for the catch-all."""
    raw = (address or "").strip()
    try:
        if raw.startswith("@"):
            local_part, domain_name = "", normalise_domain(raw[1:])
        else:
            local_part, domain_name = split_address(raw)
    except InvalidName:
        raise NotFound("That alias was not found.") from None
    alias = alias_list(actor).filter(local_part=local_part, domain__name=domain_name).first()
    if alias is None:
        raise NotFound("That alias was not found.")
    return alias
