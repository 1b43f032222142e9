from django.apps import AppConfig
from django.db.models.signals import post_delete, post_save


class MailboxesConfig(AppConfig):
    name = "mailboxes"
    verbose_name = "Mailboxes"

    def ready(self) -> None:
        # The system checks; membership changes re-route role addresses; a queued import runs.
        from mailboxes import checks, import_tasks, signals, snapshot  # noqa: F401
        from mailboxes.models import Domain
        from mailboxes.selectors import forget_hosted_hosts
        from nodes import snapshot as node_state
        from tenants.models import Organisation

        # What a node is rendered from: this app's part (nodes/ imports no app).
        node_state.register("domains", snapshot.domains)
        node_state.register("mailboxes", snapshot.mailboxes)
        node_state.register("aliases", snapshot.aliases)
        node_state.register("mailboxes_by_address", snapshot.mailboxes_by_address)
        node_state.register("aliases_by_address", snapshot.aliases_by_address)
        node_state.register("live_domain_names", snapshot.live_domain_names)
        node_state.register("peer_routes", snapshot.peer_routes)
        node_state.register("rows_inputs", snapshot.rows_inputs)
        node_state.register("sieve_mailboxes", snapshot.sieve_mailboxes)

        # A domain added, disabled or removed is (not) answered for at once, in this process;
        # other web processes notice within MAILHOST_HOSTED_DOMAIN_CACHE_SECONDS.
        post_save.connect(forget_hosted_hosts, sender=Domain, dispatch_uid="hosts-domain-save")
        post_delete.connect(forget_hosted_hosts, sender=Domain, dispatch_uid="hosts-domain-del")
        # A suspended organisation's domains are not hosted (mailboxes.selectors.live_domain_q).
        post_save.connect(forget_hosted_hosts, sender=Organisation, dispatch_uid="hosts-org-save")
