"""Writes for DKIM keys and the domain's DNS posture."""

from django.db import transaction
from django.utils import timezone

from identity.dkim import dated_selector, generate_rsa_key
from identity.models import DkimKey, DkimKeyState
from mailboxes.changes import record_change
from mailboxes.models import Domain, NodeChange
from mailhost.crypto import encrypt


def _new_key(domain: Domain, state: str) -> DkimKey:
    taken = set(domain.dkim_keys.values_list("selector", flat=True))
    private_pem, public_b64 = generate_rsa_key()
    return DkimKey.objects.create(
        domain=domain,
        selector=dated_selector(timezone.now().date(), taken),
        private_key_encrypted=encrypt(private_pem),
        public_key=public_b64,
        state=state,
        activated_at=timezone.now() if state == DkimKeyState.ACTIVE else None,
    )


@transaction.atomic
def dkim_key_create_initial(*, domain: Domain) -> DkimKey:
    """A new domain signs from the start: its first key is active at once.

    Later keys go through the rotation lifecycle (published and seen in DNS before signing).
    """
    key = _new_key(domain, DkimKeyState.ACTIVE)
    record_change(node_id=domain.node_id, kind=NodeChange.Kind.DKIM, object_id=domain.pk)
    return key
