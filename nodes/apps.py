from django.apps import AppConfig


class NodesConfig(AppConfig):
    """The node control plane: nodes, their change log, reconcile and its scheduling.

    It sits below the apps (tenants, mailboxes, identity, bans) and imports none of them: what a
    node is rendered from, the apps register in `nodes.sources` from their own `ready()`."""

    name = "nodes"
    verbose_name = "Mail nodes"
