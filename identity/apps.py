from django.apps import AppConfig


class IdentityConfig(AppConfig):
    name = "identity"
    verbose_name = "Identity and DNS posture"

    def ready(self) -> None:
        # The system checks; the receivers of identity's and mailboxes' events.
        from identity import checks, signals, tasks  # noqa: F401
        from identity.inbound import node_inbound_files
        from identity.snapshot import active_dkim_keys
        from nodes import snapshot as node_state

        # What a node is rendered from: this app's part (nodes/ imports no app).
        node_state.register("dkim_keys", active_dkim_keys)
        node_state.register("inbound_files", node_inbound_files)
