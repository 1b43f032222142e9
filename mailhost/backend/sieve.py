"""The per-mailbox Sieve script for forwarding and the vacation auto-reply. Pure: no ORM, no I/O.

The reconciler writes the result to the mailbox home as `.dovecot.sieve` (and removes the file
when `render_sieve` returns None). Every user-supplied string is escaped here, so a subject or a
body can never end the string early or inject commands: quoted strings escape backslash and
double quote (RFC 5228 2.4.2), and the body goes in a multi-line `text:` literal with
dot-stuffing (a line starting with "." gets a second one).
"""

import datetime as dt
from dataclasses import dataclass

HEADER = "# Managed by Mailhost: edits here are overwritten. Change it in /mailbox/.\n"


@dataclass(frozen=True)
class VacationSpec:
    subject: str
    body: str
    start: dt.date | None = None
    end: dt.date | None = None
    days: int = 1


@dataclass(frozen=True)
class SieveSpec:
    address: str
    forward_to: tuple[str, ...] = ()
    keep_copy: bool = True
    vacation: VacationSpec | None = None


def render_sieve(spec: SieveSpec) -> str | None:
    """The script for `spec`, or None when there is nothing to do (no forwarding, no vacation)."""
    if not spec.forward_to and spec.vacation is None:
        return None
    extensions: set[str] = set()
    blocks: list[str] = []
    if spec.vacation is not None:
        extensions.add("vacation")
        blocks.append(_vacation(spec.address, spec.vacation, extensions))
    if spec.forward_to:
        blocks.append(_forwarding(spec.forward_to, spec.keep_copy, extensions))
    require = ""
    if extensions:
        require = "require [" + ", ".join(quote(name) for name in sorted(extensions)) + "];\n\n"
    return HEADER + require + "\n".join(blocks)


def _vacation(address: str, vacation: VacationSpec, extensions: set[str]) -> str:
    args = [f":days {int(vacation.days)}"]
    if vacation.subject:
        args.append(f":subject {quote(vacation.subject)}")
    args.append(f":from {quote(address)}")
    args.append(f":addresses [{quote(address)}]")
    action = "vacation " + " ".join(args) + " " + text_literal(vacation.body) + ";\n"
    tests = []
    if vacation.start is not None:
        tests.append(f'currentdate :value "ge" "date" {quote(vacation.start.isoformat())}')
    if vacation.end is not None:
        tests.append(f'currentdate :value "le" "date" {quote(vacation.end.isoformat())}')
    if not tests:
        return action
    extensions.update(("date", "relational"))
    condition = tests[0] if len(tests) == 1 else "allof (" + ", ".join(tests) + ")"
    return f"if {condition} {{\n" + _indent(action) + "}\n"


def _forwarding(forward_to: tuple[str, ...], keep_copy: bool, extensions: set[str]) -> str:
    if keep_copy:
        extensions.add("copy")
        return "".join(f"redirect :copy {quote(address)};\n" for address in forward_to)
    lines = [f"redirect {quote(address)};\n" for address in forward_to]
    return "".join(lines) + "stop;\n"


def quote(value: str) -> str:
    """A Sieve quoted string. Callers pass one-line values (the services refuse line breaks)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def text_literal(value: str) -> str:
    """A multi-line `text:` literal: ends with a line holding a single dot, so body lines that
    start with a dot are stuffed with another (RFC 5228 2.4.2)."""
    lines = value.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    stuffed = ["." + line if line.startswith(".") else line for line in lines]
    return "text:\n" + "\n".join(stuffed) + "\n.\n"


def _indent(text: str) -> str:
    # The text: literal's lines must stay exactly as written: indent only the first line.
    first, _, rest = text.partition("\n")
    return "    " + first + "\n" + rest
