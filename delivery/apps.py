from django.apps import AppConfig


class DeliveryConfig(AppConfig):
    name = "delivery"
    verbose_name = "Outbound delivery"

    def ready(self):
        from delivery import checks, snapshot  # noqa: F401  (the system checks)
        from nodes import snapshot as node_state

        # What a node is rendered from: the outbound policy stores (nodes/ imports no app).
        node_state.register("outbound", snapshot.outbound)
