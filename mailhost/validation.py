"""Checks shared by the services, the API schemas and the forms for values people type.

One line of text (a display name, a device name, an organisation name) reaches audit rows,
lists other people read, mail headers and Sieve scripts: it may not carry control characters,
line or paragraph separators, or the bidirectional controls that make text display differently
from what it is ("Trojan Source", CVE-2021-42574). Date-times are compared in UTC, inside the
range the database can store.
"""

import datetime as dt
import unicodedata

from django.core.exceptions import ValidationError

# Explicit bidirectional embeddings, overrides and isolates (LRE RLE PDF LRO RLO, LRI RLI FSI
# PDI): they reorder what follows them on screen. The implicit marks (LRM, RLM, ALM) do not
# reorder other characters and are needed to write some right-to-left names, so they stay.
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
# Cc: C0/C1 controls (incl. U+0085 NEL); Zl/Zp: U+2028 LINE / U+2029 PARAGRAPH SEPARATOR;
# Cs: lone surrogates, which JSON can carry but no database or header can store.
_REFUSED_CATEGORIES = frozenset({"Cc", "Zl", "Zp", "Cs"})

# The same rule as a regular expression, for the API's schema (documentation and clients).
ONE_LINE_PATTERN = (
    r"^[^\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]*$"
)


def one_line_problem(value: str) -> str | None:
    """Why `value` is not one plain line of text, or None if it is."""
    for position, char in enumerate(value, start=1):
        if char in BIDI_CONTROLS:
            kind = "a bidirectional override"
        elif unicodedata.category(char) in _REFUSED_CATEGORIES:
            kind = "a line break or control character"
        else:
            continue
        return f"may not contain {kind} (U+{ord(char):04X} at character {position})"
    return None


def in_utc(value: dt.datetime) -> dt.datetime:
    """An aware date-time in UTC; ValueError if that instant lies outside the years 1–9999.

    Python accepts offsets up to ±23:59 at any year-9999 instant; PostgreSQL refuses offsets
    beyond ±15:59 and instants past the year 9999 in UTC. Normalising here turns both into a
    clear error on the field instead of a database error.
    """
    try:
        return value.astimezone(dt.UTC)
    except OverflowError:
        raise ValueError(
            "date-time out of range: it must fall within the years 1–9999 in UTC."
        ) from None


def validate_one_line(value: str) -> None:
    """Django form/model validator form of `one_line_problem` (Django admin's forms use it)."""
    problem = one_line_problem(value or "")
    if problem:
        raise ValidationError(f"This is one line of plain text: it {problem}.")
