"""Create many mailboxes at once: the one bulk service behind the bulk API and CSV import.

Set-based: every row is validated and its password hashed (in a thread pool: bcrypt releases
the GIL) before any transaction opens; then the rows go in batches, each one transaction with
one lock of the domains involved, one query for the taken addresses, bulk inserts of the
mailboxes, change-log rows and audit events, and one revision per node. The answer says row
by row what was committed.
"""

import contextlib
import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from django.db import transaction
from django.db.models import Count, F, Value

from mailboxes.models import Alias, Domain, Mailbox
from mailboxes.services.common import (
    _display_name,
    _local_part,
    _mailbox_state,
    _new_password_hash,
    _quota,
)
from mailhost.errors import Conflict, DomainError, Invalid, NotFound
from mailhost.names import InvalidName, normalise_domain
from nodes.changes import record_changes
from nodes.models import NodeChange
from tenants.access import Actor, require_write
from tenants.audit import audit_event
from tenants.models import AuditEvent, Organisation

# Rows per batch (one transaction, one revision). Small enough that a batch holds the domain
# and node locks only for milliseconds, and that a failure part-way loses at most one batch.
BULK_BATCH_ROWS = 100


@dataclass
class BulkRow:
    """One requested mailbox. `quota_mb` is an int, None (the domain's default), or text
    (a CSV cell: digits only)."""

    index: int
    address: str
    password: str | None = None
    display_name: str | None = None
    quota_mb: int | str | None = None


@dataclass
class BulkResult:
    index: int
    address: str
    outcome: str = "failed"  # created | exists | failed | not_done | rolled_back
    error: DomainError | Exception | None = None
    mailbox: Mailbox | None = None
    password: str | None = None  # the generated one, for a created row


class AddressTaken(Conflict):
    """The address is already a mailbox. The same answer whatever the row sent: nothing (least
    of all a password) is compared with the existing mailbox."""

    code = "address_taken"


def address_parts(raw: str) -> tuple[str, str]:
    """(raw local part, normalised domain name) of an address; Invalid names the field."""
    raw = (raw or "").strip()
    try:
        local_part, domain_name = raw.rsplit("@", 1)
        if "@" in local_part:
            raise ValueError
        return local_part, normalise_domain(domain_name)
    except (ValueError, InvalidName):
        raise Invalid(f"{raw!r} is not an e-mail address.", field="address") from None


def _not_a_domain(domain_name: str) -> NotFound:
    return NotFound(f"{domain_name} is not a domain of this organisation.", field="address")


@dataclass
class _Prepared:
    result: BulkResult
    domain: Domain
    local_part: str
    display_name: str
    quota_mb: int
    password: str | None
    password_hash: str = ""


def _prepare(row: BulkRow, domains: dict[str, Domain]) -> _Prepared:
    raw_local, domain_name = address_parts(row.address)
    domain = domains.get(domain_name)
    if domain is None:
        raise _not_a_domain(domain_name)
    quota = row.quota_mb
    if isinstance(quota, str):
        quota = quota.strip()
        if quota and not quota.isdigit():
            raise Invalid("quota_mb is a whole number of MB.", field="quota_mb")
        quota = int(quota) if quota else None
    return _Prepared(
        result=BulkResult(index=row.index, address=row.address),
        domain=domain,
        local_part=_local_part(raw_local, field="address"),
        display_name=_display_name(row.display_name),
        quota_mb=_quota(quota, domain.default_quota_mb),
        password=row.password or None,
    )


def _organisation_domains(organisation: Organisation, rows: list[BulkRow]) -> dict:
    names = set()
    for row in rows:
        with contextlib.suppress(Invalid):
            names.add(address_parts(row.address)[1])
    domains: dict[str, Domain] = {}
    found = Domain.objects.filter(organisation=organisation, name__in=names).select_related(
        "node"
    )
    for domain in found.order_by("name", F("verified_at").asc(nulls_last=True), "created_at", "id"):
        domains.setdefault(domain.name, domain)  # a verified claim first, as domain_get
    return domains


def _hash_all(prepared: list[_Prepared]) -> None:
    """Hash every row's password in parallel; a refused password fails its row alone."""

    def one(item: _Prepared):
        try:
            return _new_password_hash(item.password)
        except DomainError as exc:
            return exc

    if len(prepared) <= 1:
        hashed = [one(item) for item in prepared]
    else:
        workers = max(1, min(8, os.cpu_count() or 1))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            hashed = list(pool.map(one, prepared, chunksize=64))
    for item, outcome in zip(prepared, hashed, strict=True):
        if isinstance(outcome, DomainError):
            item.result.error = outcome
        else:
            item.password_hash, item.result.password = outcome


def _taken(batch: list[_Prepared]) -> set[tuple[int, str, str]]:
    """(domain id, local part, 'mailbox'|'alias') of the batch's addresses already held:
    one query."""
    domain_ids = {item.domain.pk for item in batch}
    local_parts = {item.local_part for item in batch}
    mailboxes = Mailbox.objects.filter(
        domain_id__in=domain_ids, local_part__in=local_parts, deleted_at=None
    ).order_by().values_list("domain_id", "local_part", Value("mailbox"))
    aliases = Alias.objects.filter(
        domain_id__in=domain_ids, local_part__in=local_parts
    ).order_by().values_list("domain_id", "local_part", Value("alias"))
    return set(mailboxes.union(aliases, all=True))


def _live_counts(domains: Iterable[Domain]) -> dict[int, int]:
    limited = [domain.pk for domain in domains if domain.max_mailboxes is not None]
    if not limited:
        return {}
    counts = (
        Mailbox.objects.filter(domain_id__in=limited, deleted_at=None)
        .values("domain_id")
        .annotate(n=Count("id"))
    )
    return {row["domain_id"]: row["n"] for row in counts}


def _refusal(item: _Prepared, taken: set, live: dict) -> DomainError | None:
    domain, local_part = item.domain, item.local_part
    address = f"{local_part}@{domain.name}"
    if (domain.pk, local_part, "mailbox") in taken:
        return AddressTaken(
            f"{address} is already a mailbox.", field="address"
        )
    if (domain.pk, local_part, "alias") in taken:
        return Conflict(f"{address} is already an alias.", field="address", code="address_taken")
    limit = domain.max_mailboxes
    if limit is not None and live.get(domain.pk, 0) >= limit:
        return Conflict(
            f"{domain.name} has reached its limit of {limit} mailboxes, so you cannot create "
            "another. Delete a mailbox first, or ask the mail service's staff to raise the "
            "limit.",
            code="limit_reached",
        )
    return None


def _create_batch(actor: Actor, organisation_id: int, batch: list[_Prepared]) -> None:
    """One transaction: lock, check, insert. Sets each row's outcome (created or failed)."""
    with transaction.atomic():
        domain_ids = sorted({item.domain.pk for item in batch})
        locked = {
            d.pk: d
            for d in Domain.objects.select_for_update().filter(pk__in=domain_ids).order_by("pk")
        }
        taken = _taken(batch)
        live = _live_counts(locked.values())
        new: list[_Prepared] = []
        for item in batch:
            item.domain.max_mailboxes = locked[item.domain.pk].max_mailboxes
            refusal = _refusal(item, taken, live)
            if refusal is not None:
                item.result.outcome, item.result.error = (
                    "exists" if isinstance(refusal, AddressTaken) else "failed"
                ), refusal
                continue
            taken.add((item.domain.pk, item.local_part, "mailbox"))
            live[item.domain.pk] = live.get(item.domain.pk, 0) + 1
            new.append(item)
        if not new:
            return
        by_node: dict[int, list[_Prepared]] = {}
        for item in new:
            by_node.setdefault(item.domain.node_id, []).append(item)
        for node_id, items in by_node.items():
            revision = record_changes(node_id=node_id, kind=NodeChange.Kind.MAILBOX)
            mailboxes = Mailbox.objects.bulk_create(
                [
                    Mailbox(
                        domain=item.domain,
                        local_part=item.local_part,
                        display_name=item.display_name,
                        password_hash=item.password_hash,
                        quota_mb=item.quota_mb,
                        revision=revision,
                    )
                    for item in items
                ]
            )
            NodeChange.objects.bulk_create(
                NodeChange(
                    node_id=node_id, revision=revision, kind=NodeChange.Kind.MAILBOX,
                    object_id=mailbox.pk,
                )
                for mailbox in mailboxes
            )
            AuditEvent.objects.bulk_create(
                audit_event(
                    actor=actor, organisation_id=organisation_id, action="mailbox.create",
                    target_type="mailbox", target=mailbox.address,
                    after=_mailbox_state(mailbox),
                )
                for mailbox in mailboxes
            )
            for item, mailbox in zip(items, mailboxes, strict=True):
                item.result.outcome, item.result.mailbox = "created", mailbox


def _run_batches(actor: Actor, organisation_id: int, prepared: list[_Prepared], on_batch):
    """Returns the error that stopped the run (a dependency failed), or None."""
    for start in range(0, len(prepared), BULK_BATCH_ROWS):
        batch = prepared[start : start + BULK_BATCH_ROWS]
        try:
            _create_batch(actor, organisation_id, batch)
        except Exception as exc:  # a dependency failed (or a bug): the caller reports it
            for item in batch:
                item.result.outcome, item.result.mailbox = "not_done", None
            return exc
        if on_batch is not None:
            on_batch()
    return None


def mailbox_bulk_create(
    *,
    actor: Actor,
    organisation: Organisation,
    rows: list[BulkRow],
    atomic: bool = False,
    on_batch=None,
) -> tuple[list[BulkResult], Exception | None]:
    """Create the rows' mailboxes in `organisation`'s domains; a result per row, in order.

    Each row is like `mailbox_create`: `created` (with the generated password, if one was
    generated), `exists` (the address is already a mailbox: nothing compared) or `failed`
    (with its error). If a dependency fails part-way, the rows of the batches that committed
    stay `created`, the others are `not_done` and the error is returned with the results.
    `atomic=True`: all rows or none; if any row fails, nothing is created and the rows that
    would have worked are `rolled_back`. `on_batch` is called after each committed batch.
    """
    require_write(actor, organisation.pk, "That organisation")
    domains = _organisation_domains(organisation, rows)
    results: list[BulkResult] = []
    prepared: list[_Prepared] = []
    for row in rows:
        try:
            item = _prepare(row, domains)
        except DomainError as exc:
            results.append(BulkResult(index=row.index, address=row.address, error=exc))
            continue
        results.append(item.result)
        prepared.append(item)
    _hash_all(prepared)
    prepared = [item for item in prepared if item.result.error is None]
    if not atomic:
        return results, _run_batches(actor, organisation.pk, prepared, on_batch)
    with transaction.atomic():
        stopped = _run_batches(actor, organisation.pk, prepared, on_batch)
        if stopped is not None:
            raise stopped  # rolls everything back: nothing was written
        if all(result.outcome == "created" for result in results):
            return results, None
        transaction.set_rollback(True)
    for result in results:
        if result.outcome == "created":
            result.outcome, result.mailbox, result.password = "rolled_back", None, None
    return results, None
