"""Outbound routes and transport security: relays (smarthosts), SRS and ARC for forwarded
mail, the outbound TLS policy (MTA-STS, DANE) and the queue as operators see it."""
from django.apps import AppConfig


class RoutingConfig(AppConfig):
    name = "routing"
    verbose_name = "Outbound routes and transport security"

    def ready(self) -> None:
        from identity import spf_includes
        from identity.records import Record
        from identity.selectors import INSTALL_RECORDS
        from nodes import snapshot as node_state
        from routing import tasks  # noqa: F401
        from routing.node import tls_policy_files
        from routing.selectors import spf_includes_by_domain, spf_includes_of
        from routing.snapshot import relay_snapshot
        from routing.srs_snapshot import arc_public_record, forwarding_snapshot

        # What a node is rendered from: relays, the TLS policy map, the forwarding path's
        # secrets and key.
        node_state.register("relays", relay_snapshot)
        node_state.register("tls_policy_files", tls_policy_files)
        node_state.register("forwarding", forwarding_snapshot)
        spf_includes.register(spf_includes_of, many=spf_includes_by_domain)

        def arc_record() -> list[Record]:
            found = arc_public_record()
            if found is None:
                return []
            name, value = found
            return [Record("arc", name, "TXT", value,
                           "ARC: the key forwarded mail is sealed with (operator's zone)")]

        INSTALL_RECORDS.append(arc_record)
