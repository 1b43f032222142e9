"""The portal's per-mailbox Sieve scripts: forwarding and the vacation auto-reply. Pure: no ORM,
no I/O.

The portal never writes the user's own Sieve store (`~/sieve/` and the active link
`~/.dovecot.sieve`, which ManageSieve clients manage). Its features run as Pigeonhole
`sieve_before2` / `sieve_after` scripts kept in the mailbox home, in `.mailhost/`, a directory no
protocol a user speaks can write (ManageSieve writes only its store, IMAP only `~/Maildir`).
Pigeonhole 0.5 (Debian 12) runs, per delivery: the before script, the user's active script,
then the after script; each next one only while a keep is in effect (implicit or explicit).
So in the before script `redirect :copy` and `vacation` leave the user's filters running,
`redirect` + `stop` (forward without a copy) ends the delivery there, as the holder asked, and a
second `vacation` in the user's script is discarded, not an error. A missing script is skipped.
The reconciler writes and removes these files; mail (uid 8) owns the directory so Dovecot can
store the compiled binaries beside them.

Every user-supplied string is escaped here, so a subject or a body can never end the string
early or inject commands: quoted strings escape backslash and double quote (RFC 5228 2.4.2), and
the body goes in a multi-line `text:` literal with dot-stuffing (a line starting with "." gets a
second one).
"""

import datetime as dt
from dataclasses import dataclass

HEADER = "# Managed by Mailhost: edits here are overwritten. Change it in /mailbox/.\n"
# Paths relative to the mailbox home (dovecot.conf's sieve_before2 / sieve_after name them).
PORTAL_DIR = ".mailhost"
BEFORE_SCRIPT = f"{PORTAL_DIR}/before.sieve"
AFTER_SCRIPT = f"{PORTAL_DIR}/after.sieve"
# Before this design the portal wrote its script as the user's active script, this file; such a
# file is recognised by HEADER (see nodes.reconcile.retire_legacy_scripts).
LEGACY_ACTIVE_SCRIPT = ".dovecot.sieve"


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


def render_scripts(spec: SieveSpec | None) -> dict[str, str | None]:
    """{path in the home: script, or None where there is none} for both portal scripts."""
    if spec is None:
        return {BEFORE_SCRIPT: None, AFTER_SCRIPT: None}
    return {BEFORE_SCRIPT: render_sieve(spec), AFTER_SCRIPT: render_after(spec)}


def render_sieve(spec: SieveSpec) -> str | None:
    """The before script for `spec`, or None when there is nothing to do.

    It runs after the node-wide spam filing (sieve_before, mailhost/backend/inbound.py), which
    stops at Junk, so nothing here ever answers or forwards spam. Its blocks, in order:
      1. vacation: replies, keeps the message, the user's filters then file it
      2. forwarding: `redirect :copy` keeps the message for the user's filters; without a copy
         `redirect; stop;` ends the delivery (the user's script does not run)
    """
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


def render_after(spec: SieveSpec) -> str | None:
    """The after script: runs only when neither the before script nor the user's own script
    disposed of the message (a keep is still in effect), so it is the place for filing rules
    that must yield to the user's (a default folder, say). No portal feature needs one yet."""
    return None


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
