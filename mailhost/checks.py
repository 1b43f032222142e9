"""System checks for misconfiguration, with stable ids (mailhost.E001…, mailhost.W001…)."""

import base64
import binascii

from django.conf import settings
from django.core.checks import Error, Warning, register

from mailhost import passwords
from mailhost.backend.config import inbound_config_from_settings, outbound_tls_from_settings
from mailhost.http import trusted_networks
from mailhost.names import InvalidName, normalise_domain


@register()
def check_mailhost_settings(app_configs, **kwargs):
    problems = []
    try:
        normalise_domain(settings.MAILHOST_HOSTNAME)
    except InvalidName as exc:
        problems.append(Error(f"MAILHOST_HOSTNAME is not a host name: {exc}", id="mailhost.E001"))
    ports = settings.MAILHOST_PORTS
    for name, port in ports.items():
        if not 1 <= port <= 65535:
            problems.append(
                Error(
                    f"MAILHOST_{name.upper()}_PORT must be 1–65535, got {port}", id="mailhost.E002"
                )
            )
    for name, port in settings.MAILHOST_PUBLIC_PORTS.items():
        if not 0 <= port <= 65535:  # 0: the node's own port
            problems.append(
                Error(
                    f"MAILHOST_PUBLIC_{name.upper()}_PORT must be 1–65535 (or empty), got {port}",
                    id="mailhost.E011",
                )
            )
    if len(set(ports.values())) != len(ports):
        problems.append(Error("Two MAILHOST_*_PORT settings share a port.", id="mailhost.E003"))
    if len(str(settings.MAILHOST_NODE_STATE_DIR)) > 60:
        problems.append(
            Error(
                "MAILHOST_NODE_STATE_DIR is longer than 60 characters: Dovecot's unix sockets "
                "live below it and socket paths are limited to 107 bytes.",
                id="mailhost.E004",
            )
        )
    try:
        if len(base64.urlsafe_b64decode(settings.DKIM_ENCRYPTION_KEY)) != 32:
            raise ValueError
    except (ValueError, binascii.Error):
        problems.append(
            Error(
                "DKIM_ENCRYPTION_KEY must be 32 url-safe base64 bytes (a Fernet key).",
                id="mailhost.E005",
            )
        )
    if not 4 <= settings.MAILHOST_BCRYPT_ROUNDS <= 16:
        problems.append(Error("MAILHOST_BCRYPT_ROUNDS must be 4–16.", id="mailhost.E006"))
    elif settings.MAILHOST_BCRYPT_ROUNDS < 10 and not settings.DEBUG:
        problems.append(
            Warning(
                "MAILHOST_BCRYPT_ROUNDS below 10 is weak for user-chosen passwords.",
                id="mailhost.W001",
            )
        )
    problems += _generated_password_problems(settings.MAILHOST_GENERATED_PASSWORD_LENGTH)
    if settings.MAILHOST_DELETED_RETENTION_DAYS < 0:
        problems.append(Error("MAILHOST_DELETED_RETENTION_DAYS must be ≥ 0.", id="mailhost.E007"))
    return problems


def _generated_password_problems(length: int) -> list:
    if not passwords.MIN_LENGTH <= length <= passwords.MAX_BYTES:
        return [Error(f"MAILHOST_GENERATED_PASSWORD_LENGTH must be {passwords.MIN_LENGTH}–"
                      f"{passwords.MAX_BYTES}.", id="mailhost.E008")]
    if length < passwords.MIN_GENERATED_LENGTH:
        return [Warning(
            f"MAILHOST_GENERATED_PASSWORD_LENGTH below {passwords.MIN_GENERATED_LENGTH} gives "
            f"generated passwords under {passwords.UNGUESSABLE_BITS} bits: they are hashed with "
            "bcrypt at MAILHOST_BCRYPT_ROUNDS, like chosen ones (slower bulk creates and logins).",
            id="mailhost.W002")]
    return []


@register()
def check_https_settings(app_configs, **kwargs):
    try:
        trusted_networks(tuple(settings.MAILHOST_TRUSTED_PROXIES))
    except ValueError as exc:
        return [
            Error(
                f"MAILHOST_TRUSTED_PROXIES holds something that is not an address or network: "
                f"{exc}",
                id="mailhost.E020",
            )
        ]
    return []


@register()
def check_inbound_settings(app_configs, **kwargs):
    """The MAILHOST_INBOUND_*, MAILHOST_GREYLIST_*, MAILHOST_RESOLVER_*, MAILHOST_SMTP_* and
    MAILHOST_RSPAMD_* settings, as the node's renderer would take them."""
    try:
        inbound_config_from_settings(settings)
    except (ValueError, TypeError) as exc:
        return [Error(f"Inbound filtering settings: {exc}", id="mailhost.E030")]
    return []


@register()
def check_outbound_tls_settings(app_configs, **kwargs):
    """SMTP_OUTBOUND_TLS_MODE, _DANE_MODE, _DNSSEC_VALIDATE, _MTA_STS_ENFORCE and
    MAILHOST_OUTBOUND_TLS_CA_FILE, as the node's renderer would take them."""
    try:
        outbound_tls_from_settings(settings)
    except (ValueError, TypeError) as exc:
        return [Error(f"Outbound TLS settings: {exc}", id="mailhost.E040")]
    return []
