"""The mail intake: reading the reports a mail node has spooled.

Postfix on the node delivers every message for a domain's intake addresses (the DMARC and
TLS-RPT addresses the portal publishes by default, MAILHOST_REPORT_INTAKE_LOCAL_PARTS) into
one maildir, the node's report spool, whether or not the portal, database or worker are up. A
task (reports.tasks) drains it: each message goes through `report_submit` as any upload does,
then leaves the spool. A message is removed only after its outcome was committed, so a crash
in between ingests it again next time: a duplicate, recorded as one and stored once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from reports.models import Source
from reports.services import report_submit
from tenants.access import Actor

logger = logging.getLogger(__name__)

INTAKE = Actor(system="report intake")


@dataclass(frozen=True)
class DrainResult:
    read: int
    accepted: int
    left: int  # still spooled (over the batch limit): the next run takes them


def intake_drain(*, spool: Path, limit: int = 500) -> DrainResult:
    """Ingest up to `limit` spooled messages, oldest first (maildir names start with the
    delivery time), and remove each once its outcome is recorded."""
    new = spool / "new"
    try:
        waiting = sorted(new.iterdir())
    except FileNotFoundError:  # nothing was ever delivered to this node's intake
        return DrainResult(read=0, accepted=0, left=0)
    accepted = 0
    for path in waiting[:limit]:
        try:
            with path.open("rb") as stream:
                results = report_submit(actor=INTAKE, stream=stream, source=Source.MAIL)
        except FileNotFoundError:
            continue  # another worker took it
        accepted += sum(r.outcome == "accepted" for r in results)
        path.unlink(missing_ok=True)
        logger.info("report intake: %s → %s", path.name,
                    ", ".join(f"{r.outcome} {r.kind} {r.domain}".strip() for r in results))
    read = min(len(waiting), limit)
    return DrainResult(read=read, accepted=accepted, left=len(waiting) - read)
