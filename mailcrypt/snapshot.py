"""What the node's mail_crypt key store holds: this app's part of the node state, read by the
reconciler through `nodes.snapshot` (registered in MailcryptConfig.ready())."""

import base64

from mailboxes.models import Domain
from mailboxes.selectors import held_on_node_q
from mailcrypt.models import MailCryptKey
from mailhost import crypto
from mailhost.backend.mailcrypt import MailCryptKeySnap


def _b64(pem: bytes) -> str:
    # The form mail_crypt takes from a userdb (a PEM's newlines cannot travel there).
    return base64.b64encode(pem).decode("ascii")


def mail_crypt_keys(node) -> list[MailCryptKeySnap]:
    """The key pair of every organisation that has one, for each of its verified domains on
    the node (the login's domain picks the key). Kept while encryption is off, so what was
    stored encrypted stays readable; only verified domains, so a claim on another
    organisation's name never reaches the store."""
    held = held_on_node_q(node)  # its own and those moving to or from it (nodes.moves)
    orgs = Domain.objects.filter(held).values("organisation_id")
    keys = {key.organisation_id: key for key in MailCryptKey.objects.filter(
        organisation_id__in=orgs)}
    domains = Domain.objects.filter(
        held, organisation_id__in=keys, verified_at__isnull=False
    ).values_list("organisation_id", "name").order_by("name")
    # Unwrapped once per organisation; an unreadable one raises (SecretUnreadable) and the
    # reconcile fails, rather than taking the keys of encrypted mailboxes off the node.
    unwrapped = {org_id: (_b64(crypto.decrypt(key.private_key_encrypted)),
                          _b64(key.public_key_pem.encode("ascii")), key.enabled)
                 for org_id, key in keys.items()}
    return [MailCryptKeySnap(name, *unwrapped[org_id]) for org_id, name in domains]
