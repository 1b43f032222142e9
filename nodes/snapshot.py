"""What a node is rendered from: frozen snapshots of the desired state, read from the apps.

The node control plane imports no app. Each app that owns part of a node's state registers the
function that reads it, from its own `AppConfig.ready()` (mailboxes: domains, mailboxes,
aliases — as lists, and as streams in address order for the full pass — the names of the
live domains, the live domains of the other nodes with where those take mail, a digest of
what the rows are rendered from and the mailboxes with a portal Sieve script; identity:
DKIM keys and the inbound policy files; delivery: the outbound policy
stores, i.e. suppressions, sending quotas, application senders; routing: relays, the TLS
policy map and the forwarding path's SRS secrets and ARC key; mailcrypt: the organisations'
encryption-at-rest keys),
and the reconciler reads through the functions below. Every source must be registered before a
reconcile runs; a missing one is a programming error and fails loudly rather than rendering an
empty node.
"""

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from mailhost.backend.forwarding import ForwardingSnap
from mailhost.backend.mailcrypt import MailCryptKeySnap
from mailhost.backend.model import AliasSnap, DkimSnap, DomainSnap, MailboxSnap
from mailhost.backend.outbound import OutboundSnap
from mailhost.backend.peers import PeerRoute
from mailhost.backend.relays import RelaySnap

SOURCES = (
    "domains", "mailboxes", "aliases", "mailboxes_by_address", "aliases_by_address",
    "live_domain_names", "dkim_keys", "inbound_files", "outbound", "relays", "tls_policy_files",
    "forwarding", "peer_routes", "mail_crypt_keys", "rows_inputs", "sieve_mailboxes",
)  # fmt: skip

_registry: dict[str, Callable[..., Any]] = {}


def register(source: str, reader: Callable[..., Any]) -> None:
    """Called from an app's `ready()`: `reader` provides `source` (one of SOURCES)."""
    if source not in SOURCES:
        raise ValueError(f"unknown node state source {source!r}")
    _registry[source] = reader


def _reader(source: str) -> Callable[..., Any]:
    try:
        return _registry[source]
    except KeyError:
        raise LookupError(f"no app registered the node state source {source!r}") from None


def _listed(selection: Iterable[int] | None) -> list[int] | None:
    return None if selection is None else list(selection)


def _none_asked(*selections: list[int] | None) -> bool:
    """An empty selection asks for nothing: an incremental pass names no domain or alias of
    most changes, and asking the database costs it queries all the same."""
    return any(selection == [] for selection in selections)


def domains(node, ids: Iterable[int] | None = None) -> list[DomainSnap]:
    """The node's domains (all, or those with `ids`)."""
    ids = _listed(ids)
    if _none_asked(ids):
        return []
    return _reader("domains")(node, ids)


def mailboxes(
    node, *, ids: Iterable[int] | None = None, domain_ids: Iterable[int] | None = None
) -> list[MailboxSnap]:
    """The node's mailboxes: all, those with `ids`, or those of the domains `domain_ids`."""
    ids, domain_ids = _listed(ids), _listed(domain_ids)
    if _none_asked(ids, domain_ids):
        return []
    return _reader("mailboxes")(node, ids=ids, domain_ids=domain_ids)


def aliases(
    node, *, ids: Iterable[int] | None = None, domain_ids: Iterable[int] | None = None
) -> list[AliasSnap]:
    """The node's aliases: all, those with `ids`, or those of the domains `domain_ids`."""
    ids, domain_ids = _listed(ids), _listed(domain_ids)
    if _none_asked(ids, domain_ids):
        return []
    return _reader("aliases")(node, ids=ids, domain_ids=domain_ids)


def mailboxes_by_address(node) -> Iterator[MailboxSnap]:
    """Every mailbox of the node in address order (byte order), streamed: the full reconcile
    merges them with the lookup store's rows, so a million mailboxes are never all in memory."""
    return _reader("mailboxes_by_address")(node)


def aliases_by_address(node) -> Iterator[AliasSnap]:
    """Every alias of the node in address order (byte order), streamed."""
    return _reader("aliases_by_address")(node)


def rows_inputs(node) -> str | None:
    """A digest of everything in the database the node's rows are rendered from, which any
    write to it changes; None when the database cannot give one. The full pass uses it to
    know, without reading them, that the rows it verified last time are still the ones."""
    return _reader("rows_inputs")(node)


def sieve_mailboxes(node) -> list[MailboxSnap]:
    """The node's mailboxes with a portal Sieve script to render (forwarding or vacation)."""
    return _reader("sieve_mailboxes")(node)


def live_domain_names(node) -> list[str]:
    """The names of the node's served (active, verified) domains: the edge gives each its
    service hosts, and each gets a certificate for them."""
    return _reader("live_domain_names")(node)


def active_dkim_keys(node) -> list[DkimSnap]:
    """The signing key of every domain the node signs for."""
    return _reader("dkim_keys")(node)


def inbound_files(node, config) -> dict[str, bytes]:
    """{path relative to the state dir: content} of the node's inbound policy files."""
    return _reader("inbound_files")(node, config)


def outbound(node) -> OutboundSnap:
    """Every row of the node's outbound policy stores (suppressions, quota limits, senders)."""
    return _reader("outbound")(node)


def relays(node) -> list[RelaySnap]:
    """The relay of every live domain of the node that has one, and the install's default."""
    return _reader("relays")(node)
def tls_policy_files(node, config) -> dict[str, bytes]:
    """{path relative to the state dir: content} of the outbound TLS policy map (routing)."""
    return _reader("tls_policy_files")(node, config)
def forwarding(node) -> ForwardingSnap:
    """The SRS secrets (signing one first) and the ARC key the node's forwarding path uses."""
    return _reader("forwarding")(node)
def peer_routes(node) -> list[PeerRoute]:
    """The live domains of every other node that takes mail from its peers (has an SMTP
    address), with that address: the node's transports to them (mailhost/backend/peers.py)."""
    return _reader("peer_routes")(node)


def mail_crypt_keys(node) -> list[MailCryptKeySnap]:
    """The encryption-at-rest key pair of each domain of the node whose organisation has one."""
    return _reader("mail_crypt_keys")(node)
