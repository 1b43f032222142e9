"""The node's relay tables, read for nodes.snapshot (source "relays"): each live domain's relay
(its own, else its organisation's) and the install-wide default from settings."""

from django.conf import settings

from mailboxes.models import Domain
from mailboxes.selectors import live_domain_q
from mailhost.backend.relays import RelaySnap
from mailhost.crypto import decrypt
from routing.models import Relay


def _snap(sender_domain: str, relay: Relay) -> RelaySnap:
    password = decrypt(relay.password_encrypted).decode() if relay.password_encrypted else ""
    return RelaySnap(sender_domain=sender_domain, host=relay.host, port=relay.port,
                     tls=relay.tls_mode, username=relay.username, password=password)


def default_relay() -> RelaySnap | None:
    if not settings.MAILHOST_RELAY_DEFAULT_HOST:
        return None
    return RelaySnap(sender_domain="", host=settings.MAILHOST_RELAY_DEFAULT_HOST,
                     port=settings.MAILHOST_RELAY_DEFAULT_PORT,
                     tls=settings.MAILHOST_RELAY_DEFAULT_TLS,
                     username=settings.MAILHOST_RELAY_DEFAULT_USERNAME,
                     password=settings.MAILHOST_RELAY_DEFAULT_PASSWORD)


def relay_snapshot(node) -> list[RelaySnap]:
    domains = list(Domain.objects.filter(live_domain_q(), node=node)
                   .values_list("id", "name", "organisation_id"))
    org_ids = {org for _, _, org in domains}
    relays = Relay.objects.filter(organisation_id__in=org_ids)
    by_domain = {r.domain_id: r for r in relays if r.domain_id}
    by_org = {r.organisation_id: r for r in relays if not r.domain_id}
    snaps = []
    for domain_id, name, org_id in domains:
        relay = by_domain.get(domain_id) or by_org.get(org_id)
        if relay is not None:
            snaps.append(_snap(name, relay))
    default = default_relay()
    return snaps + ([default] if default else [])
