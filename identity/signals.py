"""Identity's reactions to other apps' events (connected when IdentityConfig.ready() imports
this module)."""

from django.dispatch import receiver

from identity.services import dkim_key_create_initial
from mailboxes import events
from mailboxes.models import Domain


@receiver(events.domain_created, dispatch_uid="identity.domain_created")
def first_dkim_key(sender, domain: Domain, **kwargs) -> None:
    """A new domain signs from the start: its first key, in the same transaction."""
    dkim_key_create_initial(domain=domain)
