"""Reads of relays, always through the actor's organisations."""

from django.conf import settings
from django.db.models import Q, QuerySet

from mailboxes.models import Domain
from mailhost.errors import NotFound
from routing.models import Relay
from tenants.access import Actor, require_read
from tenants.models import Organisation


def relay_list(actor: Actor, organisation: Organisation) -> QuerySet[Relay]:
    require_read(actor, organisation.id)
    return (Relay.objects.filter(organisation=organisation).select_related("domain")
            .order_by("domain__name", "id"))


def relay_get(actor: Actor, organisation: Organisation, relay_id: int) -> Relay:
    relay = relay_list(actor, organisation).filter(pk=relay_id).first()
    if relay is None:
        raise NotFound("That relay was not found.")
    return relay


def spf_includes_of(domain: Domain) -> tuple[str, ...]:
    """What the domain's SPF record must include: its relay's include (its own relay, else its
    organisation's); with neither, the install-wide default relay's. One query."""
    found = dict(Relay.objects.filter(organisation_id=domain.organisation_id)
                 .filter(Q(domain=domain) | Q(domain__isnull=True))
                 .values_list("domain_id", "spf_include"))
    if found:
        include = found.get(domain.id, found.get(None, ""))
        return (include,) if include else ()
    if settings.MAILHOST_RELAY_DEFAULT_HOST and settings.MAILHOST_RELAY_DEFAULT_SPF_INCLUDE:
        return (settings.MAILHOST_RELAY_DEFAULT_SPF_INCLUDE,)
    return ()
