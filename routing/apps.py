"""Outbound routes and transport security: relays (smarthosts), SRS and ARC for forwarded
mail, the outbound TLS policy (MTA-STS, DANE) and the queue as operators see it."""
from django.apps import AppConfig


class RoutingConfig(AppConfig):
    name = "routing"
    verbose_name = "Outbound routes and transport security"

    def ready(self) -> None:
        from identity import spf_includes
        from nodes import snapshot as node_state
        from routing.node import tls_policy_files
        from routing.selectors import spf_includes_of
        from routing.snapshot import relay_snapshot

        node_state.register("relays", relay_snapshot)
        node_state.register("tls_policy_files", tls_policy_files)
        spf_includes.register(spf_includes_of)
