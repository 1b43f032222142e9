"""Frozen snapshots of desired mail state: what the pure renderers take as input.

No ORM objects cross into rendering: `nodes.snapshot` reads these from the database, and
everything below `mailhost.backend` works on them alone.
"""

from dataclasses import dataclass
from typing import NamedTuple

from mailhost.backend.sieve import SieveSpec


@dataclass(frozen=True)
class DomainSnap:
    id: int
    name: str
    active: bool
    # Ownership not verified yet: nothing of the domain reaches the node (no domain row, no
    # mailbox or alias rows, no signing key), so a claim on someone else's name does nothing.
    verified: bool = True
    # Where postmaster@ and abuse@ go (RFC 5321 4.5.1, RFC 2142): the address the organisation
    # chose, else its first admin's; "" for none (the node then uses the operator mailbox).
    role_target: str = ""


class MailboxSnap(NamedTuple):
    """Immutable like the others, but a NamedTuple: a full reconcile builds one per mailbox
    (a million at a time), and a frozen dataclass costs ~3× as much to construct."""

    id: int
    address: str
    password_hash: str
    home_id: str
    quota_mb: int
    status: str  # active | suspended | disabled
    domain_active: bool
    deleted: bool
    app_password_hashes: tuple[str, ...] = ()
    sieve: SieveSpec | None = None  # forwarding and vacation, rendered into the home
    domain_verified: bool = True  # False: prepared, rendered as nothing until verified

    @property
    def can_login(self) -> bool:
        return self.domain_active and not self.deleted and self.status == "active"

    @property
    def can_receive(self) -> bool:
        return self.domain_active and not self.deleted and self.status in ("active", "suspended")


@dataclass(frozen=True)
class AliasSnap:
    id: int
    address: str  # 'user@domain', or '@domain' for a catch-all
    destinations: tuple[str, ...]
    active: bool
    domain_active: bool
    domain_verified: bool = True  # False: rendered as nothing until the domain is verified


@dataclass(frozen=True)
class DkimSnap:
    domain: str
    selector: str
    private_key_pem: bytes
