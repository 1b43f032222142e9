"""What the DMARC stage advice knows beyond DNS: the evidence of the domain's DMARC reports.

Identity does not read reports (the reports app sits above it). An app that does registers a
reader from its `AppConfig.ready()` (reports: `reports.figures.dmarc_advice`); without one the
advice rests on DNS alone and says so.
"""

from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class DmarcEvidence:
    evidence: str = ""  # what the reports show, in one sentence
    blockers: list[str] = field(default_factory=list)  # why tightening must wait


_reader: Callable[..., DmarcEvidence] | None = None


def register(reader: Callable[..., DmarcEvidence]) -> None:
    """Called from an app's `ready()`: `reader(domain)` reads the domain's report evidence."""
    global _reader
    _reader = reader


def dmarc_evidence(domain) -> DmarcEvidence:
    if _reader is None:
        return DmarcEvidence(evidence="No DMARC report reader is installed.")
    return _reader(domain)
