"""System checks for the DNS-posture settings, with stable ids (identity.E001…, identity.W001…)."""

import ipaddress
from urllib.parse import urlparse

from django.conf import settings
from django.core.checks import Error, Warning, register

from identity.addresses import parse_networks
from identity.mtasts import MAX_AGE_LIMIT, MODES
from identity.report_uris import report_uris
from identity.verify import nameserver
from mailhost.backend.render import ROLE_LOCAL_PARTS


@register()
def check_identity_settings(app_configs, **kwargs):
    return [
        *_resolvers(), *_addresses(), *_portal(), *_numbers(), *_publish_networks(),
        *_default_report_uris(),
        *([] if settings.MAILHOST_MTASTS_MODE in MODES else [Error(
            f"MAILHOST_MTASTS_MODE must be one of {', '.join(MODES)}.", id="identity.E004"
        )]),
    ]


def _resolvers():
    problems = []
    for spec in settings.MAILHOST_DNS_RESOLVERS:
        try:
            nameserver(spec)
        except ValueError:
            problems.append(Error(
                f"MAILHOST_DNS_RESOLVERS: {spec!r} is not an IP address or ip@port.",
                id="identity.E001",
            ))
    if not 1 <= settings.MAILHOST_DNS_TIMEOUT_MS <= settings.MAILHOST_DNS_LIFETIME_MS:
        problems.append(Error(
            "MAILHOST_DNS_TIMEOUT_MS must be ≥ 1 and ≤ MAILHOST_DNS_LIFETIME_MS.",
            id="identity.E002",
        ))
    return problems


def _addresses():
    problems = []
    for name, version in (("MAILHOST_PUBLIC_IPV4", 4), ("MAILHOST_PUBLIC_IPV6", 6)):
        for raw in getattr(settings, name):
            try:
                valid = ipaddress.ip_address(raw).version == version
            except ValueError:
                valid = False
            if not valid:
                problems.append(Error(f"{name}: {raw!r} is not an IPv{version} address.",
                                      id="identity.E003"))
    try:  # a stack bound to loopback is a development one: no public addresses to name
        public = not ipaddress.ip_address(settings.MAILHOST_BIND_ADDRESS).is_loopback
    except ValueError:
        public = True
    if public and not settings.MAILHOST_PUBLIC_IPV4 and not settings.MAILHOST_PUBLIC_IPV6:
        problems.append(Warning(
            "MAILHOST_PUBLIC_IPV4/IPV6 are empty: SPF records will name the mail host instead "
            "of its addresses, and reverse DNS is not checked.", id="identity.W001",
        ))
    return problems


def _portal():
    url = urlparse(settings.MAILHOST_PORTAL_URL)
    if url.scheme not in ("http", "https") or not url.hostname:
        return [Error("MAILHOST_PORTAL_URL must be an http(s) URL with a host.",
                      id="identity.E005")]
    development = f".{url.hostname}".endswith(".localhost")  # RFC 6761: never public
    if url.scheme != "https" and not settings.DEBUG and not development:
        return [Warning("MAILHOST_PORTAL_URL is not https: BIMI logos must be served over "
                        "HTTPS.", id="identity.W002")]
    return []


def _numbers():
    limits = {
        "MAILHOST_DKIM_ROTATION_DAYS": 0, "MAILHOST_DKIM_SWITCH_DELAY_MINUTES": 0,
        "MAILHOST_DKIM_GRACE_DAYS": 0, "MAILHOST_DNS_CHECK_INTERVAL_MINUTES": 1,
        "MAILHOST_BIMI_MAX_BYTES": 1, "MAILHOST_DNS_TTL": 1, "MAILHOST_MTASTS_MAX_AGE": 1,
        "MAILHOST_DNS_PUBLISH_TIMEOUT_MS": 1,
    }
    problems = [
        Error(f"{name} must be ≥ {low}.", id="identity.E006")
        for name, low in limits.items() if getattr(settings, name) < low
    ]
    if settings.MAILHOST_MTASTS_MAX_AGE > MAX_AGE_LIMIT:
        problems.append(Error(f"MAILHOST_MTASTS_MAX_AGE must be ≤ {MAX_AGE_LIMIT}.",
                              id="identity.E006"))
    return problems


def _publish_networks():
    problems = []
    for spec in settings.MAILHOST_DNS_PUBLISH_ALLOWED_NETWORKS:
        try:
            parse_networks([spec])
        except ValueError as exc:
            problems.append(Error(f"MAILHOST_DNS_PUBLISH_ALLOWED_NETWORKS: {exc}.",
                                  id="identity.E007"))
    return problems


def _default_report_uris():
    """The defaults every new domain's DMARC and TLS-RPT records get go through the same
    schema as what organisations type."""
    problems = []
    for name, https in (("MAILHOST_DMARC_RUA", False), ("MAILHOST_TLSRPT_RUA", True)):
        values = [v.replace("{domain}", "example.com") for v in getattr(settings, name)]
        try:
            report_uris(values, https=https)
        except ValueError as exc:
            problems.append(Error(f"{name}: {exc}", id="identity.E008"))
        problems += _bouncing_defaults(name, getattr(settings, name))
    return problems


def _bouncing_defaults(name: str, values: list[str]) -> list[Error]:
    """A default at the new domain itself ({domain}) must be an address every hosted domain
    accepts, or every new domain would publish one that bounces."""
    problems = []
    for value in values:
        address = value.removeprefix("mailto:")
        local, _, domain = address.partition("@")
        accepted = (*settings.MAILHOST_REPORT_INTAKE_LOCAL_PARTS, *ROLE_LOCAL_PARTS)
        if domain == "{domain}" and local.split("+", 1)[0] not in accepted:
            problems.append(Error(
                f"{name}: {address} would bounce at every new domain; at the domain itself use "
                f"{' or '.join(f'{local}@{{domain}}' for local in accepted)}, which every "
                "hosted domain accepts, or an address of your own elsewhere.",
                id="identity.E009",
            ))
    return problems
