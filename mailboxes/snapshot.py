"""Selectors that read desired mail state into frozen snapshots for the renderers (registered
as node state sources in MailboxesConfig.ready(), read by nodes.reconcile through nodes.snapshot).

Queries here are set-based (one per table, not one per object) so a full snapshot of 100,000
mailboxes costs a handful of queries, and an incremental one costs the same few, filtered by id.
"""

import functools
import hashlib
from collections import defaultdict
from collections.abc import Iterable, Iterator
from pathlib import Path

from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import BooleanField, CharField, ExpressionWrapper, F, Q, Value
from django.db.models.functions import Cast, Collate, Concat

from mailboxes import selectors
from mailboxes.models import Alias, AppPassword, Domain, Mailbox
from mailboxes.selectors import first_admin_addresses, held_on_node_q, live_domain_q
from mailhost.backend.model import AliasSnap, DomainSnap, MailboxSnap
from mailhost.backend.peers import PeerRoute
from mailhost.backend.sieve import SieveSpec, VacationSpec
from nodes.models import MailNode
from nodes.moves import held_domain_ids, unrouted_domain_ids
from tenants.models import Membership, Organisation

BATCH = 5000

_MAILBOX_FIELDS = (
    "pk", "local_part", "domain__name", "domain_live", "password_hash", "home_id",
    "quota_mb", "status", "deleted_at", "domain__verified_at",
)  # fmt: skip
# What the holder set in /mailbox/, rendered into a Sieve script. Read in a second query, for
# the mailboxes that set something only: decoding 100,000 empty JSON lists cost ~0.4 s a pass.
# (With the rows themselves for the few mailboxes an incremental pass names.)
_SIEVE_FIELDS = (
    "pk", "local_part", "domain__name",
    "forward_to", "forward_keep_copy", "vacation_enabled", "vacation_subject", "vacation_body",
    "vacation_start", "vacation_end",
)  # fmt: skip


def _live(prefix: str = "") -> ExpressionWrapper:
    """Whether the domain is served (mailboxes.selectors.live_domain_q), as a column."""
    return ExpressionWrapper(live_domain_q(prefix), output_field=BooleanField())


def live_domain_names(node: MailNode) -> list[str]:
    """The names of the node's served domains (the edge gives each its service hosts)."""
    return list(Domain.objects.filter(live_domain_q(), node=node)
                .order_by("name").values_list("name", flat=True))


def peer_routes(node: MailNode) -> list[PeerRoute]:
    """Every live domain of the other nodes that have an SMTP address, and that address. A name
    is live (verified) on one node at most, so none of this node's domains is routed away."""
    rows = (Domain.objects.filter(live_domain_q()).exclude(node=node).exclude(node__smtp_host="")
            .exclude(pk__in=unrouted_domain_ids(node))  # switching away: still delivered here
            .values_list("name", "node__smtp_host", "node__smtp_port"))
    return [PeerRoute(domain=name, host=host, port=port) for name, host, port in rows]


def domains(node: MailNode, ids: Iterable[int] | None = None) -> list[DomainSnap]:
    queryset = Domain.objects.filter(held_on_node_q(node)).annotate(live=_live())
    if ids is not None:
        queryset = queryset.filter(pk__in=list(ids))
    rows = list(queryset.values_list(
        "pk", "name", "live", "verified_at", "organisation_id", "role_target"
    ))
    automatic = {org for *_, org, target in rows if not target}
    admins = first_admin_addresses(automatic if ids is not None else None) if automatic else {}
    return [
        DomainSnap(
            id=pk, name=name, active=live, verified=verified is not None,
            role_target=target or admins.get(org, ""),
        )
        for pk, name, live, verified, org, target in rows
    ]


def mailboxes(
    node: MailNode, *, ids: Iterable[int] | None = None, domain_ids: Iterable[int] | None = None
) -> list[MailboxSnap]:
    queryset = Mailbox.objects.filter(held_on_node_q(node, "domain__")).order_by()  # renderers sort
    queryset = queryset.annotate(domain_live=_live("domain__"))
    if ids is not None:
        queryset = queryset.filter(pk__in=list(ids))
    if domain_ids is not None:
        queryset = queryset.filter(domain_id__in=list(domain_ids))
    elif ids is not None:
        # The mailboxes an incremental pass names (the changed ones): the Sieve settings in
        # the same query, and no server-side cursor (one round trip, not four).
        width = len(_MAILBOX_FIELDS)
        snaps = [
            _mailbox_snap(*row[:width], sieve=_sieve_spec(f"{row[1]}@{row[2]}", *row[width:]))
            for row in queryset.values_list(*_MAILBOX_FIELDS, *_SIEVE_FIELDS[3:])
        ]
        return _with_app_passwords(snaps)
    sieve = _sieve_specs(queryset)
    rows = queryset.values_list(*_MAILBOX_FIELDS).iterator(chunk_size=BATCH)
    snaps = [_mailbox_snap(*row, sieve=sieve.get(row[0])) for row in rows]
    return _with_app_passwords(snaps, node if ids is None and domain_ids is None else None)


def _mailbox_snap(
    pk, local, domain, domain_live, password_hash, home_id, quota_mb, status, deleted_at,
    domain_verified_at, *, sieve: SieveSpec | None,
) -> MailboxSnap:  # fmt: skip
    return MailboxSnap(
        id=pk,
        address=f"{local}@{domain}",
        password_hash=password_hash,
        home_id=str(home_id),
        quota_mb=quota_mb,
        status=status,
        domain_active=domain_live,
        deleted=deleted_at is not None,
        sieve=sieve,
        domain_verified=domain_verified_at is not None,
    )


def _sieve_specs(queryset) -> dict[int, SieveSpec]:
    configured = queryset.exclude(forward_to=[], vacation_enabled=False)
    specs = {}
    for pk, local, domain, *values in configured.values_list(*_SIEVE_FIELDS):
        if (spec := _sieve_spec(f"{local}@{domain}", *values)) is not None:
            specs[pk] = spec
    return specs


def _sieve_spec(
    address, forward_to, keep_copy, vacation_enabled, subject, body, start, end
) -> SieveSpec | None:
    if not forward_to and not vacation_enabled:
        return None
    vacation = VacationSpec(subject, body, start, end) if vacation_enabled else None
    return SieveSpec(address, tuple(forward_to), keep_copy, vacation)


def _with_app_passwords(
    snaps: list[MailboxSnap], whole_node: MailNode | None = None
) -> list[MailboxSnap]:
    """Attach each mailbox's live app password hashes: one query for a whole node's snapshot
    (100,000 ids as IN parameters cost seconds), else one per batch of mailboxes."""
    hashes: dict[int, list[str]] = defaultdict(list)
    live = AppPassword.objects.filter(revoked_at=None).order_by("id")
    if whole_node is not None:
        queries = [live.filter(held_on_node_q(whole_node, "mailbox__domain__"))]
    else:
        ids = [snap.id for snap in snaps]
        queries = [
            live.filter(mailbox_id__in=ids[start : start + BATCH])
            for start in range(0, len(ids), BATCH)
        ]
    for query in queries:
        for mailbox_id, password_hash in query.values_list("mailbox_id", "password_hash"):
            hashes[mailbox_id].append(password_hash)
    if not hashes:
        return snaps
    return [
        snap._replace(app_password_hashes=tuple(hashes[snap.id])) if snap.id in hashes else snap
        for snap in snaps
    ]


def _address_key(prefix: str = "") -> Collate:
    """`local@domain`, collated as the node's lookup store orders it (byte order), so a full
    reconcile merges the two row streams without sorting either in memory."""
    collation = "C" if connection.vendor == "postgresql" else "BINARY"
    return Collate(
        Concat(F(f"{prefix}local_part"), Value("@"), F(f"{prefix}domain__name")), collation
    )


def mailboxes_by_address(node: MailNode) -> Iterator[MailboxSnap]:
    """Every mailbox of the node, ordered by address (byte order), streamed from a server-side
    cursor: a full reconcile holds a batch, not the node. App passwords come from a second
    cursor in the same order, joined as both stream; forwarding/vacation from the query of the
    mailboxes that set them (usually few). The columns come ready-made (address, home id as
    text, flags as booleans): this runs once per mailbox of the node."""
    queryset = Mailbox.objects.filter(held_on_node_q(node, "domain__"))
    sieve = _sieve_specs(queryset.order_by())
    rows = (
        queryset.annotate(
            address_key=_address_key(),
            domain_live=_live("domain__"),
            is_deleted=_flag(Q(deleted_at__isnull=False)),
            domain_verified=_flag(Q(domain__verified_at__isnull=False)),
            home=_home_text(),
        )
        .order_by("address_key", "pk")
        .values_list(
            "pk", "address_key", "password_hash", "home", "quota_mb", "status", "domain_live",
            "is_deleted", "domain_verified",
        )
    )
    home_as_text = connection.vendor != "postgresql"
    hashes = (
        AppPassword.objects.filter(held_on_node_q(node, "mailbox__domain__"), revoked_at=None)
        .annotate(address_key=_address_key("mailbox__"))
        .order_by("address_key", "mailbox_id", "id")
        .values_list("address_key", "mailbox_id", "password_hash")
    )
    app_hashes = _grouped(hashes.iterator(chunk_size=BATCH))
    pending = next(app_hashes, None)
    for pk, address, password_hash, home, quota, status, live, deleted, verified in rows.iterator(
        chunk_size=BATCH
    ):
        if home_as_text:
            home = str(home)
        snap = MailboxSnap(
            pk, address, password_hash, home, quota, status, live, deleted, (), sieve.get(pk),
            verified,
        )
        # Both cursors walk the same order: skip what belongs before this mailbox (none, but
        # for a mailbox that changed between the two queries), take what is its own.
        while pending is not None and pending[0] < (address, pk):
            pending = next(app_hashes, None)
        if pending is not None and pending[0] == (address, pk):
            snap = snap._replace(app_password_hashes=tuple(pending[1]))
            pending = next(app_hashes, None)
        yield snap


def _flag(condition: Q) -> ExpressionWrapper:
    return ExpressionWrapper(condition, output_field=BooleanField())


def _home_text():
    """The home id as PostgreSQL's text of a UUID (what str() of it gives: a UUID object per
    row costs ~1.5 µs to make and print); other databases store it otherwise: as is."""
    if connection.vendor == "postgresql":
        return Cast("home_id", output_field=CharField())
    return F("home_id")


def _grouped(rows: Iterator[tuple[str, int, str]]) -> Iterator[tuple[tuple[str, int], list[str]]]:
    """((address, mailbox id), [hash, …]) from rows sorted by address and mailbox."""
    current, group = None, []
    for address, mailbox_id, password_hash in rows:
        if (address, mailbox_id) != current and group:
            yield current, group
            group = []
        current = (address, mailbox_id)
        group.append(password_hash)
    if group:
        yield current, group


def aliases_by_address(node: MailNode) -> Iterator[AliasSnap]:
    """Every alias of the node, ordered by address (byte order), streamed."""
    queryset = (
        Alias.objects.filter(held_on_node_q(node, "domain__"))
        .annotate(domain_live=_live("domain__"), address_key=_address_key())
        .order_by("address_key", "pk")
    )
    rows = queryset.values_list(
        "pk", "local_part", "domain__name", "domain_live", "destinations", "active",
        "domain__verified_at",
    )
    for pk, local, domain, domain_live, destinations, active, verified_at in rows.iterator(
        chunk_size=BATCH
    ):
        yield AliasSnap(
            id=pk,
            address=f"{local}@{domain}",
            destinations=tuple(destinations),
            active=active,
            domain_active=domain_live,
            domain_verified=verified_at is not None,
        )


def aliases(
    node: MailNode, *, ids: Iterable[int] | None = None, domain_ids: Iterable[int] | None = None
) -> list[AliasSnap]:
    queryset = Alias.objects.filter(held_on_node_q(node, "domain__")).annotate(
        domain_live=_live("domain__"))
    if ids is not None:
        queryset = queryset.filter(pk__in=list(ids))
    if domain_ids is not None:
        queryset = queryset.filter(domain_id__in=list(domain_ids))
    rows = queryset.values_list(
        "pk", "local_part", "domain__name", "domain_live", "destinations", "active",
        "domain__verified_at",
    )
    return [
        AliasSnap(
            id=pk,
            address=f"{local}@{domain}",
            destinations=tuple(destinations),
            active=active,
            domain_active=domain_live,
            domain_verified=verified_at is not None,
        )
        for pk, local, domain, domain_live, destinations, active, verified_at in rows
    ]


def _version_sum(table: str, where: str) -> str:
    """Count and an order-free sum over the rows' (id, xmin): PostgreSQL gives every inserted
    or updated row version a new xmin, so any write to any column changes the sum."""
    return (
        f"(SELECT count(*) || ':' || coalesce(sum(hashint8extended("  # noqa: S608 (fixed names)
        f"(t.id::bigint << 32) + t.xmin::text::bigint, 0)), 0) FROM {table} t WHERE {where})"
    )


def rows_inputs(node: MailNode) -> str | None:
    """A digest of every database row the node's lookup rows (and the portal's Sieve files)
    are rendered from: its domains, their organisations, those organisations' members and
    their users (role addresses go to the first admin), the domains' mailboxes (with the
    holders' Sieve settings), app passwords and aliases. Any write to one of those rows
    changes it. Computed inside PostgreSQL (~0.1 s at 100,000 mailboxes; no row leaves the
    database); None on another database or inside a transaction (then a full pass reads every
    row)."""
    if connection.vendor != "postgresql" or connection.in_atomic_block or held_domain_ids(node):
        # (A domain moving to or from the node: its rows are not all the node's own.)
        # Inside a transaction, the rows it changes keep its xmin however often it changes
        # them: the digest cannot see those changes.
        return None
    domain, member = Domain._meta.db_table, Membership._meta.db_table
    domains = f"SELECT id FROM {domain} WHERE node_id = %s"  # noqa: S608 (fixed names)
    organisations = f"SELECT organisation_id FROM {domain} WHERE node_id = %s"  # noqa: S608
    members = f"SELECT user_id FROM {member} WHERE organisation_id IN ({organisations})"  # noqa: S608
    mailboxes = f"SELECT id FROM {Mailbox._meta.db_table} WHERE domain_id IN ({domains})"  # noqa: S608
    parts = [
        _version_sum(domain, "node_id = %s"),
        _version_sum(Organisation._meta.db_table, f"id IN ({organisations})"),
        _version_sum(member, f"organisation_id IN ({organisations})"),
        _version_sum(get_user_model()._meta.db_table, f"id IN ({members})"),
        _version_sum(Mailbox._meta.db_table, f"domain_id IN ({domains})"),
        _version_sum(AppPassword._meta.db_table, f"mailbox_id IN ({mailboxes})"),
        _version_sum(Alias._meta.db_table, f"domain_id IN ({domains})"),
    ]
    query = "SELECT " + " || ' ' || ".join(parts)
    with connection.cursor() as cursor:
        cursor.execute(query, [node.pk] * query.count("%s"))
        return f"{_snapshot_code()} {cursor.fetchone()[0]}"


@functools.cache
def _snapshot_code() -> str:
    """This module's and the selectors' source: an upgrade that reads the rows differently
    makes the next full pass read them all."""
    digest = hashlib.sha256(Path(__file__).read_bytes())
    digest.update(Path(selectors.__file__).read_bytes())
    return digest.hexdigest()


def sieve_mailboxes(node: MailNode) -> list[MailboxSnap]:
    """The node's mailboxes whose holder set forwarding or vacation (usually few): what a full
    pass that need not read every mailbox renders the portal's Sieve files from."""
    configured = Mailbox.objects.filter(held_on_node_q(node, "domain__")).exclude(
        forward_to=[], vacation_enabled=False
    )
    return mailboxes(node, ids=list(configured.values_list("pk", flat=True)))
