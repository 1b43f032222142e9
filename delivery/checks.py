"""System checks for the outbound channel's settings (delivery.E001…)."""

from django.conf import settings
from django.core.checks import Error, register

from identity.addresses import parse_networks


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
    return problems
