"""Bulk CSV import and export of mailboxes."""

import csv
import functools
import io
import json

from django.db import transaction
from django.utils import timezone

from mailboxes import events
from mailboxes.models import (
    Domain,
    ImportStatus,
    MailboxImport,
)
from mailboxes.services.common import _one_line
from mailboxes.services.mailboxes import mailbox_create
from mailhost.crypto import decrypt, encrypt
from mailhost.errors import Conflict, DomainError, Forbidden, Invalid, NotFound
from mailhost.names import (
    InvalidName,
    normalise_domain,
)
from tenants.access import Actor, require_write
from tenants.audit import audit_record
from tenants.models import Organisation

# --- bulk CSV import -------------------------------------------------------------------------

IMPORT_COLUMNS = ("address", "display_name", "quota_mb", "password")
MAX_IMPORT_ROWS = 100_000
MAX_IMPORT_BYTES = 20 * 1024 * 1024
IMPORT_PROGRESS_EVERY = 25  # rows between progress writes


def _parse_import(content: str) -> list[dict]:
    reader = csv.DictReader(io.StringIO(content))
    header = [name.strip().lower() for name in (reader.fieldnames or [])]
    if "address" not in header:
        raise Invalid(
            "The first line must name the columns, including 'address' "
            f"(allowed: {', '.join(IMPORT_COLUMNS)}).",
            field="file",
        )
    unknown = sorted(set(header) - set(IMPORT_COLUMNS))
    if unknown:
        raise Invalid(f"Unknown column(s): {', '.join(unknown)}.", field="file")
    reader.fieldnames = header
    rows = []
    try:
        for row in reader:
            if any((value or "").strip() for value in row.values() if isinstance(value, str)):
                rows.append({"line": reader.line_num, **{k: row.get(k) for k in IMPORT_COLUMNS}})
            if len(rows) > MAX_IMPORT_ROWS:
                raise Invalid(f"At most {MAX_IMPORT_ROWS} rows per import.", field="file")
    except csv.Error as exc:
        raise Invalid(f"Line {reader.line_num}: not valid CSV ({exc}).", field="file") from None
    if not rows:
        raise Invalid("The file has no rows below its header.", field="file")
    return rows


@transaction.atomic
def mailbox_import_start(
    *, actor: Actor, organisation: Organisation, filename: str, content: bytes
) -> MailboxImport:
    """Check an uploaded CSV and queue it; the rows are created by `mailbox_import_run`."""
    require_write(actor, organisation.pk, "That organisation")
    if actor.user is None:
        raise Forbidden("Imports are started by a signed-in operator.")
    if len(content) > MAX_IMPORT_BYTES:
        raise Invalid(f"The file is larger than {MAX_IMPORT_BYTES // 2**20} MB.", field="file")
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise Invalid("Save the file as UTF-8 CSV.", field="file") from None
    filename = _one_line(filename, field="file", limit=200, label="file name")
    rows = _parse_import(text)
    job = MailboxImport.objects.create(
        organisation=organisation,
        created_by=actor.user,
        actor_ip=actor.ip,
        filename=filename,
        total=len(rows),
        source_encrypted=encrypt(json.dumps(rows).encode()),
    )
    audit_record(
        actor=actor,
        organisation_id=organisation.pk,
        action="mailbox_import.start",
        target_type="mailbox_import",
        target=job.filename or f"import {job.pk}",
        after={"rows": len(rows)},
    )
    transaction.on_commit(functools.partial(_enqueue_import, job.pk))
    return job


def _enqueue_import(job_id: int) -> None:
    events.import_queued.send(sender=MailboxImport, import_id=job_id)


def _import_row(actor: Actor, organisation_id: int, row: dict, domains: dict) -> str | None:
    """Create one row's mailbox; returns the generated password, if one was generated."""
    raw_address = (row.get("address") or "").strip()
    try:
        local_part, domain_name = raw_address.rsplit("@", 1)
        domain_name = normalise_domain(domain_name)
    except (ValueError, InvalidName):
        raise Invalid(f"{raw_address!r} is not an e-mail address.", field="address") from None
    if domain_name not in domains:
        domains[domain_name] = Domain.objects.filter(
            name=domain_name, organisation_id=organisation_id
        ).first()
    domain = domains[domain_name]
    if domain is None:
        raise NotFound(f"{domain_name} is not a domain of this organisation.")
    quota_raw = (row.get("quota_mb") or "").strip()
    if quota_raw and not quota_raw.isdigit():
        raise Invalid("quota_mb is a whole number of MB.", field="quota_mb")
    _, generated = mailbox_create(
        actor=actor,
        domain=domain,
        local_part=local_part,
        password=(row.get("password") or None),
        display_name=row.get("display_name") or "",
        quota_mb=int(quota_raw) if quota_raw else None,
    )
    return generated


def mailbox_import_run(*, import_id: int) -> MailboxImport:
    """Create the mailboxes of a queued import, one service call per row, recording progress.

    Each row is its own transaction: a bad row is reported and the others still go in.
    Re-running a finished import does nothing (the source is gone).
    """
    job = MailboxImport.objects.select_related("created_by").get(pk=import_id)
    if job.is_finished or not job.source_encrypted:
        return job
    rows = json.loads(decrypt(job.source_encrypted))
    actor = Actor(user=job.created_by, ip=job.actor_ip)
    MailboxImport.objects.filter(pk=job.pk).update(status=ImportStatus.RUNNING)
    domains: dict = {}
    generated: list[list[str]] = []
    job.processed = job.created = job.failed = 0
    job.errors = []
    try:
        for row in rows:
            _import_one(job, actor, row, domains, generated)
    except Exception:
        # Never leave an import "running" for ever, nor its passwords at rest.
        MailboxImport.objects.filter(pk=job.pk).update(
            status=ImportStatus.FAILED,
            finished_at=timezone.now(),
            source_encrypted="",
            processed=job.processed,
            created=job.created,
            failed=job.failed,
            errors=job.errors,
        )
        raise
    job.status = ImportStatus.DONE
    job.finished_at = timezone.now()
    job.source_encrypted = ""
    job.generated_encrypted = encrypt(json.dumps(generated).encode()) if generated else ""
    job.save()
    return job


def _import_one(job: MailboxImport, actor: Actor, row: dict, domains: dict, generated: list):
    try:
        password = _import_row(actor, job.organisation_id, row, domains)
    except DomainError as exc:
        job.failed += 1
        address = str(row.get("address") or "")[:254]
        job.errors.append({"line": row["line"], "address": address, "error": exc.detail})
    else:
        job.created += 1
        if password:
            generated.append([row["address"].strip().lower(), password])
    job.processed += 1
    if job.processed % IMPORT_PROGRESS_EVERY == 0:
        job.save(update_fields=["processed", "created", "failed", "errors"])


@transaction.atomic
def mailbox_import_take_generated(*, actor: Actor, mailbox_import: MailboxImport) -> list:
    """The generated passwords of an import, [[address, password], …], handed out once."""
    require_write(actor, mailbox_import.organisation_id, "That import")
    job = MailboxImport.objects.select_for_update().get(pk=mailbox_import.pk)
    if not job.generated_encrypted:
        raise Conflict("The generated passwords were already downloaded.", code="already_taken")
    generated = json.loads(decrypt(job.generated_encrypted))
    job.generated_encrypted = ""
    job.save(update_fields=["generated_encrypted"])
    audit_record(
        actor=actor,
        organisation_id=job.organisation_id,
        action="mailbox_import.passwords",
        target_type="mailbox_import",
        target=job.filename or f"import {job.pk}",
        after={"count": len(generated)},
    )
    return generated
