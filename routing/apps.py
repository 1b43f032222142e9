from django.apps import AppConfig


class RoutingConfig(AppConfig):
    name = "routing"
    verbose_name = "Outbound routes and transport security"

    def ready(self) -> None:
        from nodes import snapshot as node_state
        from routing.node import tls_policy_files

        node_state.register("tls_policy_files", tls_policy_files)
