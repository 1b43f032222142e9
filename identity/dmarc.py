"""DMARC (RFC 7489): the record value, its parsing, and the staged path to enforcement. Pure.

Stages: none (monitor) → quarantine at 25, 50, 100 % → reject. A step is "stricter" when it
asks receivers to act on more mail; relaxing is always allowed, tightening is gated on SPF and
DKIM passing (services decide that).
"""

from dataclasses import dataclass

from identity.dkim import parse_tags

POLICIES = ("none", "quarantine", "reject")
LADDER: tuple[tuple[str, int], ...] = (
    ("none", 100),
    ("quarantine", 25),
    ("quarantine", 50),
    ("quarantine", 100),
    ("reject", 100),
)


@dataclass(frozen=True)
class Dmarc:
    policy: str = "none"
    pct: int = 100
    rua: tuple[str, ...] = ()
    ruf: tuple[str, ...] = ()
    adkim: str = "r"
    aspf: str = "r"


def txt_value(dmarc: Dmarc) -> str:
    """`v=DMARC1; p=…` with only what differs from the defaults, so it reads plainly."""
    parts = ["v=DMARC1", f"p={dmarc.policy}"]
    if dmarc.policy != "none" and dmarc.pct != 100:
        parts.append(f"pct={dmarc.pct}")
    if dmarc.rua:
        parts.append("rua=" + ",".join(dmarc.rua))
    if dmarc.ruf:
        parts.append("ruf=" + ",".join(dmarc.ruf))
    if dmarc.adkim != "r":
        parts.append(f"adkim={dmarc.adkim}")
    if dmarc.aspf != "r":
        parts.append(f"aspf={dmarc.aspf}")
    return "; ".join(parts)


def parse(value: str) -> Dmarc:
    """Parse a published record; raise ValueError saying what is wrong."""
    if not value.replace(" ", "").startswith("v=DMARC1"):
        raise ValueError("it does not start with v=DMARC1")
    tags = parse_tags(value)
    policy = tags.get("p", "").lower()
    if policy not in POLICIES:
        raise ValueError(f"p={policy or '(missing)'} is not none, quarantine or reject")
    pct = tags.get("pct", "100")
    if not pct.isdigit() or int(pct) > 100:
        raise ValueError(f"pct={pct} is not 0–100")
    adkim, aspf = tags.get("adkim", "r").lower(), tags.get("aspf", "r").lower()
    if adkim not in ("r", "s") or aspf not in ("r", "s"):
        raise ValueError("adkim and aspf are r or s")
    return Dmarc(
        policy=policy,
        pct=int(pct),
        rua=_uris(tags.get("rua", "")),
        ruf=_uris(tags.get("ruf", "")),
        adkim=adkim,
        aspf=aspf,
    )


def _uris(raw: str) -> tuple[str, ...]:
    # A size limit suffix (`mailto:a@b!10m`) does not change where reports go.
    return tuple(sorted(u.strip().split("!")[0].lower() for u in raw.split(",") if u.strip()))


def strictness(policy: str, pct: int) -> float:
    """Orders stages: none < quarantine 1 % < … < quarantine 100 % < reject 1 % < … < reject."""
    if policy == "none":
        return 0.0
    return POLICIES.index(policy) + pct / 100


def enforces(dmarc: Dmarc) -> bool:
    """Whether receivers act on all failing mail: what BIMI requires."""
    return dmarc.policy in ("quarantine", "reject") and dmarc.pct == 100


def next_step(policy: str, pct: int) -> tuple[str, int] | None:
    """The recommended next stage, or None once at reject 100 %."""
    current = strictness(policy, pct)
    for stage in LADDER:
        if strictness(*stage) > current:
            return stage
    return None
