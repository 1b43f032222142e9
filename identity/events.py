"""Signals identity's services send once a transaction committed, so that the services need
not import the tasks that run the follow-up (the tasks import the services). The receivers, in
identity.tasks, are connected when IdentityConfig.ready() imports it."""

from django.dispatch import Signal

# domain_id=: the expected record set changed and the domain publishes automatically.
publish_wanted = Signal()
# domain_id=: an operator asked for a DNS check now.
check_wanted = Signal()
