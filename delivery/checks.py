"""System checks for the outbound channel's settings (delivery.E001…)."""

from django.conf import settings
from django.core.checks import Error, register

from identity.addresses import parse_networks

MIN_RETENTION_DAYS = 7


@register()
def webhook_settings(app_configs, **kwargs):
    problems = []
    for spec in settings.MAILHOST_WEBHOOK_ALLOWED_NETWORKS:
        try:
            parse_networks([spec])
        except ValueError as exc:
            problems.append(Error(f"MAILHOST_WEBHOOK_ALLOWED_NETWORKS: {exc}.",
                                  id="delivery.E001"))
    for name in ("MAILHOST_WEBHOOK_RETRY_SECONDS", "MAILHOST_WEBHOOK_MAX_ATTEMPTS",
                 "MAILHOST_WEBHOOK_TIMEOUT_SECONDS"):
        if getattr(settings, name) < 1:
            problems.append(Error(f"{name} must be at least 1.", id="delivery.E002"))
    if settings.MAILHOST_DELIVERY_RETENTION_DAYS < MIN_RETENTION_DAYS:
        problems.append(Error(
            f"MAILHOST_DELIVERY_RETENTION_DAYS must be at least {MIN_RETENTION_DAYS}: longer than "
            "Postfix keeps a message in its queue (5 days), so no record goes before its last "
            "attempt.", id="delivery.E003"))
    return problems
