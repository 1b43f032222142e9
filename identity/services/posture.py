"""Posture settings: report addresses, SPF, publishing targets and the like."""

import base64
import binascii
import ipaddress
import logging

from django.conf import settings
from django.db import transaction

from identity.addresses import Network, parse_networks, refusal
from identity.models import (
    DomainPosture,
    TsigAlgorithm,
)
from identity.publish import (
    refusal_message,
)
from identity.report_uris import report_uris
from identity.services.common import (
    _TSIG_KEY_NAME,
    _audit,
    _lock,
    _posture_for_update,
    _records_changed,
)
from identity.services.dkim import _ed25519_set
from mailboxes.models import Domain
from mailboxes.selectors import report_address_problem
from mailhost.crypto import encrypt
from mailhost.errors import Invalid
from mailhost.names import InvalidName, normalise_domain
from tenants.access import Actor, require_write

logger = logging.getLogger(__name__)


# --- posture settings ------------------------------------------------------------------------


def _report_uris(raw: list[str], field: str, *, https: bool = False) -> list[str]:
    """Report URIs through the strict schema (identity.report_uris): they land in TXT records."""
    try:
        return report_uris(raw, https=https)
    except ValueError as exc:
        raise Invalid(str(exc), field=field) from None


def _deliverable(domain: Domain, uris: list[str], field: str) -> list[str]:
    """A report address in one of the organisation's own domains must not bounce: the portal
    publishes it in DNS for every receiver on the internet to send to."""
    for uri in uris:
        if uri.startswith("mailto:"):
            problem = report_address_problem(domain.organisation_id, uri.removeprefix("mailto:"))
            if problem:
                raise Invalid(problem, field=field, code="report_address_not_deliverable")
    return uris


def _alignment(raw: str, field: str) -> str:
    if raw not in ("r", "s"):
        raise Invalid("Alignment is r (relaxed) or s (strict).", field=field)
    return raw


_POSTURE_FIELDS = (
    "dmarc_rua", "dmarc_ruf", "dmarc_adkim", "dmarc_aspf", "tlsrpt_rua", "dkim_ed25519",
    "auto_publish", "publish_server", "publish_port", "publish_zone", "tsig_key_name",
    "tsig_algorithm",
)


def _posture_state(posture: DomainPosture) -> dict:
    state = {name: getattr(posture, name) for name in _POSTURE_FIELDS}
    state["tsig_secret_set"] = bool(posture.tsig_secret_encrypted)
    return state


@transaction.atomic
def posture_update(
    *,
    actor: Actor,
    domain: Domain,
    dmarc_rua: list[str] | None = None,
    dmarc_ruf: list[str] | None = None,
    dmarc_adkim: str | None = None,
    dmarc_aspf: str | None = None,
    tlsrpt_rua: list[str] | None = None,
    dkim_ed25519: bool | None = None,
    auto_publish: bool | None = None,
    publish_server: str | None = None,
    publish_port: int | None = None,
    publish_zone: str | None = None,
    tsig_key_name: str | None = None,
    tsig_algorithm: str | None = None,
    tsig_secret: str | None = None,
) -> DomainPosture:
    """Change report addresses, alignment, Ed25519 signing and publishing. None: unchanged."""
    require_write(actor, domain.organisation_id, "That domain")
    domain = _lock(domain)
    posture = _posture_for_update(domain)
    before = _posture_state(posture)
    if dmarc_rua is not None:
        posture.dmarc_rua = _deliverable(domain, _report_uris(dmarc_rua, "dmarc_rua"), "dmarc_rua")
    if dmarc_ruf is not None:
        posture.dmarc_ruf = _deliverable(domain, _report_uris(dmarc_ruf, "dmarc_ruf"), "dmarc_ruf")
    if dmarc_adkim is not None:
        posture.dmarc_adkim = _alignment(dmarc_adkim, "dmarc_adkim")
    if dmarc_aspf is not None:
        posture.dmarc_aspf = _alignment(dmarc_aspf, "dmarc_aspf")
    if tlsrpt_rua is not None:
        posture.tlsrpt_rua = _deliverable(
            domain, _report_uris(tlsrpt_rua, "tlsrpt_rua", https=True), "tlsrpt_rua"
        )
    _publishing_update(
        posture, domain, auto_publish=auto_publish, server=publish_server, port=publish_port,
        zone=publish_zone, key_name=tsig_key_name, algorithm=tsig_algorithm, secret=tsig_secret,
    )
    if dkim_ed25519 is not None and dkim_ed25519 != posture.dkim_ed25519:
        posture.dkim_ed25519 = dkim_ed25519
        _ed25519_set(actor, domain, dkim_ed25519)
    after = _posture_state(posture)
    if after == before and tsig_secret is None:
        return posture
    posture.save()
    _audit(actor, domain, "dns.settings", domain.name, before=before, after=after)
    _records_changed(domain, posture)
    return posture


def _publishing_update(posture, domain, *, auto_publish, server, port, zone, key_name,
                       algorithm, secret) -> None:
    if server is not None:
        posture.publish_server = _publish_server(server)
    if port is not None:
        if not isinstance(port, int) or not 1 <= port <= 65535:
            raise Invalid("The port is 1–65535.", field="publish_port")
        posture.publish_port = port
    if zone is not None:
        posture.publish_zone = _publish_zone(zone, domain)
    if key_name is not None:
        name = key_name.strip().lower()
        if name and not _TSIG_KEY_NAME.match(name):
            raise Invalid(
                "The TSIG key name is a DNS name, like mailhost-update.", field="tsig_key_name"
            )
        posture.tsig_key_name = name.rstrip(".")
    if algorithm is not None:
        if algorithm not in TsigAlgorithm.values:
            raise Invalid(f"The TSIG algorithm is one of {', '.join(TsigAlgorithm.values)}.",
                          field="tsig_algorithm")
        posture.tsig_algorithm = algorithm
    if secret is not None:
        posture.tsig_secret_encrypted = encrypt(_tsig_secret(secret)) if secret else ""
    if auto_publish is not None:
        posture.auto_publish = auto_publish
    if posture.auto_publish and not (
        posture.publish_server and posture.tsig_key_name and posture.tsig_secret_encrypted
    ):
        raise Invalid(
            "Automatic publishing needs the DNS server's address, a TSIG key name and its secret.",
            field="auto_publish",
        )


def _publish_server(raw: str) -> str:
    """An IP address the portal may connect to, or a host name (checked at each publish)."""
    value = raw.strip()
    if not value:
        return ""
    try:
        address = ipaddress.ip_address(value.removeprefix("[").removesuffix("]"))
    except ValueError:
        try:
            return normalise_domain(value)
        except InvalidName as exc:
            raise Invalid(
                f"The DNS server is an IP address or a host name: {exc}", field="publish_server"
            ) from None
    what = refusal(address, allowed_publish_networks())
    if what is not None:
        raise Invalid(refusal_message(str(address), what), field="publish_server",
                      code="dns_publish_target_refused")
    return str(address)


def allowed_publish_networks() -> list[Network]:
    """MAILHOST_DNS_PUBLISH_ALLOWED_NETWORKS; a bad entry (system check identity.E007) allows
    nothing rather than failing every publish."""
    networks = []
    for spec in settings.MAILHOST_DNS_PUBLISH_ALLOWED_NETWORKS:
        try:
            networks += parse_networks([spec])
        except ValueError as exc:
            logger.error("MAILHOST_DNS_PUBLISH_ALLOWED_NETWORKS: %s", exc)
    return networks


def _publish_zone(raw: str, domain: Domain) -> str:
    if not raw:
        return ""
    try:
        zone = normalise_domain(raw)
    except InvalidName as exc:
        raise Invalid(str(exc), field="publish_zone") from None
    if not (domain.name == zone or domain.name.endswith("." + zone)):
        raise Invalid(f"{domain.name} is not inside the zone {zone}.", field="publish_zone")
    return zone


def _tsig_secret(raw: str) -> bytes:
    try:
        decoded = base64.b64decode(raw.strip(), validate=True)
    except (binascii.Error, ValueError):
        decoded = b""
    if len(decoded) < 16:
        raise Invalid("The TSIG secret is base64, at least 16 bytes.", field="tsig_secret")
    return raw.strip().encode()
