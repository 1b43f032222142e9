"""Outbound routes and transport security: relays (smarthosts), SRS and ARC for forwarded
mail, the outbound TLS policy (MTA-STS, DANE) and the queue as operators see it."""
from django.apps import AppConfig


class RoutingConfig(AppConfig):
    name = "routing"
    verbose_name = "Outbound routes and transport security"

    def ready(self):
        from identity import spf_includes
        from nodes import snapshot
        from routing.selectors import spf_includes_of
        from routing.snapshot import relay_snapshot

        snapshot.register("relays", relay_snapshot)
        spf_includes.register(spf_includes_of)
