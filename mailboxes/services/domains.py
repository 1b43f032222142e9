"""Domains: claim, ownership verification, settings, role addresses, removal."""

from urllib.parse import urlparse

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from mailboxes import events
from mailboxes.models import (
    Domain,
    DomainStatus,
    VerificationMethod,
    new_verification_token,
)
from mailboxes.selectors import address_receives, domain_verified_owner, domain_verified_parent
from mailboxes.services.common import (
    _audit,
    _changed,
    _domain_name,
    _domain_state,
    _lock_domain,
    _quota,
)
from mailboxes.services.placement import node_for_new_domain
from mailhost.errors import Conflict, Forbidden, Invalid
from mailhost.names import (
    InvalidName,
    domain_for_display,
    hosting_refusal,
    is_special_use,
    normalise_address,
    normalise_domain,
)
from nodes.changes import record_change
from nodes.models import NodeChange
from tenants.access import Actor, require_write
from tenants.models import Organisation

# --- domains ---------------------------------------------------------------------------------


def _reserved_hosts() -> list[str]:
    """The service's own host names: the mail host and the portal's host."""
    hosts = {settings.MAILHOST_HOSTNAME, urlparse(settings.MAILHOST_PORTAL_URL).hostname or ""}
    names = set()
    for host in hosts:
        try:
            names.add(normalise_domain(host))
        except InvalidName:
            continue  # a single-label or broken setting: mailhost.E001 reports it
    return sorted(names)


def _hostable_name(actor: Actor, raw: str) -> str:
    """The name, normalised, if it may be hosted at all; Invalid says why not."""
    name = _domain_name(raw)
    refusal = hosting_refusal(
        name, reserved_hosts=_reserved_hosts(), allow_reserved_parents=actor.is_global
    )
    if refusal:
        raise Invalid(refusal, field="name", code="name_not_hostable")
    return name


def _limit_value(actor: Actor, max_mailboxes, current=None):
    """A mailbox limit is what the service's staff sell and set: an organisation may not set
    or raise its own (a 403 that says who can)."""
    if max_mailboxes is not None and (not isinstance(max_mailboxes, int) or max_mailboxes < 0):
        raise Invalid("The mailbox limit is a whole number, or empty.", field="max_mailboxes")
    if max_mailboxes != current and not actor.is_global:
        raise Forbidden(
            "The mailbox limit is set by the mail service's staff; ask them to change it.",
            field="max_mailboxes",
            code="limit_set_by_staff",
        )
    return max_mailboxes


def _verified_at_creation(organisation: Organisation, name: str) -> str:
    """The verification method a new claim starts verified with, or "" (it must prove
    ownership). Nobody else may hold the name verified in either case."""
    if domain_verified_owner(name) is not None:
        return ""
    if is_special_use(name):
        return VerificationMethod.SPECIAL_USE
    parent = domain_verified_parent(name)
    if parent is not None and parent.organisation_id == organisation.pk:
        return VerificationMethod.PARENT  # its DNS is in a zone they proved they control
    return ""


@transaction.atomic
def domain_create(
    *,
    actor: Actor,
    organisation: Organisation,
    name: str,
    max_mailboxes: int | None = None,
    default_quota_mb: int | None = None,
    node: str | None = None,
) -> Domain:
    """Claim a domain for an organisation. It is routed, signed and given mail only once its
    ownership is verified (special-use names and names under the organisation's own verified
    domain are verified at once). A name another organisation holds gets a claim like any
    other: the answer never tells one tenant what another hosts.

    `node`: the name of the mail node it goes on, the staff's choice alone; by default the
    least-loaded node (mailboxes.services.placement)."""
    require_write(actor, organisation.pk, "That organisation")
    name = _hostable_name(actor, name)
    placed_on = node_for_new_domain(actor=actor, node_name=node)
    max_mailboxes = _limit_value(actor, max_mailboxes)
    quota = _quota(default_quota_mb, settings.MAILHOST_DEFAULT_QUOTA_MB, "default_quota_mb")
    # Serialise claims on one organisation (its row): one organisation, one claim per name.
    Organisation.objects.select_for_update().filter(pk=organisation.pk).first()
    if Domain.objects.filter(organisation=organisation, name=name).exists():
        raise Conflict(
            f"{domain_for_display(name)} is already a domain of this organisation.",
            field="name",
            code="domain_taken",
        )
    parent = domain_verified_parent(name)
    if parent is not None and parent.organisation_id != organisation.pk:
        raise Conflict(
            f"{domain_for_display(name)} is inside a domain whose owner has verified it on "
            "this service; only that organisation can add names under it.",
            field="name",
            code="inside_verified_domain",
        )
    method = _verified_at_creation(organisation, name)
    domain = Domain.objects.create(
        organisation=organisation,
        node=placed_on,
        name=name,
        max_mailboxes=max_mailboxes,
        default_quota_mb=quota,
        verified_at=timezone.now() if method else None,
        verification_method=method,
    )
    events.domain_created.send(sender=Domain, domain=domain)  # identity: its first DKIM key
    _changed(domain, NodeChange.Kind.DOMAIN)
    _audit(actor, organisation.pk, "domain.create", domain, after=_domain_state(domain))
    return domain


@transaction.atomic
def domain_mark_verified(*, actor: Actor, domain: Domain, method: str) -> Domain:
    """Ownership proven: from now on the domain is routed, signed and its mailboxes and aliases
    reach the node (the node change makes the incremental reconcile pick it up at once).

    `method` "dns" is for the verifier (it saw the token); "staff" needs a staff actor. Refused
    while another organisation holds the name verified.
    """
    if method == VerificationMethod.STAFF and not actor.is_global:
        raise Forbidden("Only the mail service's staff can mark a domain verified.")
    if method not in (VerificationMethod.DNS, VerificationMethod.STAFF):
        raise Invalid("Domains are verified by DNS or by staff.", field="method")
    require_write(actor, domain.organisation_id, "That domain")
    domain = _lock_domain(domain)
    if domain.is_verified:
        return domain
    holder = domain_verified_owner(domain.name)
    if holder is not None:
        detail = (
            f"{domain.display_name} is already verified by another organisation on this "
            "service. Ask the service's staff to move it."
        )
        if actor.is_global:
            detail = (
                f"{domain.display_name} is verified by {holder.organisation.name}; revoke "
                "that verification first."
            )
        raise Conflict(detail, code="verified_elsewhere")
    before = _domain_state(domain)
    domain.verified_at, domain.verification_method = timezone.now(), method
    domain.save(update_fields=["verified_at", "verification_method"])
    _changed(domain, NodeChange.Kind.DOMAIN)
    _audit(actor, domain.organisation_id, "domain.verify", domain, before, _domain_state(domain))
    return domain


@transaction.atomic
def domain_revoke_verification(*, actor: Actor, domain: Domain) -> Domain:
    """Staff only: take a domain off the node (no routing, no signing, its mailboxes and aliases
    stop working) until its ownership is verified again, e.g. to move a name to its real owner.
    A fresh token is issued: the old one may be published by the previous owner."""
    if not actor.is_global:
        raise Forbidden("Only the mail service's staff can revoke a domain's verification.")
    domain = _lock_domain(domain)
    if not domain.is_verified:
        return domain
    before = _domain_state(domain)
    domain.verified_at, domain.verification_method = None, ""
    domain.verification_token = new_verification_token()
    domain.save(update_fields=["verified_at", "verification_method", "verification_token"])
    _changed(domain, NodeChange.Kind.DOMAIN)
    _audit(
        actor, domain.organisation_id, "domain.unverify", domain, before, _domain_state(domain)
    )
    return domain


def _role_target(domain: Domain, raw: str) -> str:
    """Where postmaster@ and abuse@ go: "" (automatic) or an address of the organisation that
    receives mail now, so the choice can never make them bounce."""
    if not isinstance(raw, str):
        raise Invalid("The role address target is an e-mail address, or empty.",
                      field="role_target")
    if not raw.strip():
        return ""
    try:
        address = normalise_address(raw.strip())
    except InvalidName as exc:
        raise Invalid(str(exc), field="role_target") from None
    # A role address of another domain counts only if a real mailbox or alias holds it: two
    # domains routed to each other's postmaster@ would loop.
    if not address_receives(domain.organisation_id, address):
        raise Invalid(
            f"{address} is not a mailbox or alias of this organisation that receives mail: "
            "postmaster@ and abuse@ must reach someone. Create it first, or leave this empty "
            "for the automatic choice.",
            field="role_target",
            code="role_target_not_deliverable",
        )
    return address


@transaction.atomic
def domain_update(
    *,
    actor: Actor,
    domain: Domain,
    status: str | None = None,
    max_mailboxes: int | None | type[Ellipsis] = ...,
    default_quota_mb: int | None = None,
    role_target: str | None = None,
) -> Domain:
    """Change a domain's settings; None (… for max_mailboxes) leaves one as it is.
    `role_target` "" returns postmaster@ and abuse@ to the automatic choice."""
    require_write(actor, domain.organisation_id, "That domain")
    domain = _lock_domain(domain)
    before = _domain_state(domain)
    if status is not None:
        if status not in DomainStatus.values:
            raise Invalid(f"Status is one of {', '.join(DomainStatus.values)}.", field="status")
        domain.status = status
    if max_mailboxes is not ...:
        domain.max_mailboxes = _limit_value(actor, max_mailboxes, domain.max_mailboxes)
    if default_quota_mb is not None:
        domain.default_quota_mb = _quota(default_quota_mb, 0, "default_quota_mb")
    if role_target is not None:
        domain.role_target = _role_target(domain, role_target)
    after = _domain_state(domain)
    if after == before:
        return domain
    domain.save(update_fields=["status", "max_mailboxes", "default_quota_mb", "role_target"])
    _changed(domain, NodeChange.Kind.DOMAIN)
    _audit(actor, domain.organisation_id, "domain.update", domain, before, after)
    return domain


@transaction.atomic
def domain_delete(*, actor: Actor, domain: Domain) -> None:
    """Stop hosting a domain. Refused while it still has mailboxes or aliases."""
    require_write(actor, domain.organisation_id, "That domain")
    domain = _lock_domain(domain)
    mailboxes = domain.mailboxes.count()
    aliases = domain.aliases.count()
    if mailboxes or aliases:
        raise Conflict(
            f"{domain.name} still has {mailboxes} mailbox(es) (deleted ones included until "
            f"purged) and {aliases} alias(es); remove them first.",
            code="domain_not_empty",
        )
    _audit(actor, domain.organisation_id, "domain.delete", domain, before=_domain_state(domain))
    node_id, domain_id = domain.node_id, domain.pk
    domain.delete()
    record_change(node_id=node_id, kind=NodeChange.Kind.DOMAIN, object_id=domain_id)
