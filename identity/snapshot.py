"""Identity's part of a node's state: the DKIM signing keys (registered as a node state source
in IdentityConfig.ready(), read by nodes.reconcile through nodes.snapshot)."""

from identity.models import DkimKey, DkimKeyState
from mailboxes.selectors import live_domain_q
from mailhost.backend.model import DkimSnap
from mailhost.crypto import decrypt
from nodes.models import MailNode


def active_dkim_keys(node: MailNode) -> list[DkimSnap]:
    """The RSA signing key of every active, verified domain on the node, decrypted for
    OpenDKIM (a claim whose ownership is not verified must never sign for the name).

    An ed25519 key (optional, per domain) is generated and published but does not sign yet:
    OpenDKIM signs with one SigningTable match unless MultipleSignatures is on, and RSA is
    the key every receiver verifies."""
    keys = DkimKey.objects.filter(
        live_domain_q("domain__"), domain__node=node, state=DkimKeyState.ACTIVE, algorithm="rsa"
    ).values_list("domain__name", "selector", "private_key_encrypted")
    return [
        DkimSnap(domain=domain, selector=selector, private_key_pem=decrypt(encrypted))
        for domain, selector, encrypted in keys
    ]
