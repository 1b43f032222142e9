"""A mailbox's mail, copied out of and back into Dovecot with Dovecot's own tools.

Out: `doveadm backup` (dsync) copies the mailbox into a private maildir, consistent with
concurrent delivery (dsync locks and syncs as a mail client would); `walk_maildir` then reads that
copy: each message's folder, GUID, flags, keywords and internal date (the file's mtime).

Back in: `stage_maildir` writes the messages still missing into a private maildir with the same
GUIDs (the maildir file's base name), flags and dates, and `import_maildir` hands it to
`doveadm import`, which keeps all three. A message already present (same folder, same GUID) is
never staged, so restoring twice adds nothing.

No ORM, no settings: the portal's backup service decides what to copy and where it goes.
"""

import base64
import os
import re
import subprocess
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from mailhost.backend.config import MAIL_GID, MAIL_UID

INBOX = "INBOX"
# maildir's letters for the system flags (Maildir "info" after ":2,").
SYSTEM_FLAGS = {"D": "\\Draft", "F": "\\Flagged", "R": "\\Answered", "S": "\\Seen",
                "T": "\\Deleted"}  # fmt: skip
FLAG_LETTERS = {name: letter for letter, name in SYSTEM_FLAGS.items()}
KEYWORDS_FILE = "dovecot-keywords"
MAILDIR_PARTS = ("cur", "new", "tmp")
# A GUID as a maildir base name: what Dovecot writes (time.Mxxx.host,S=..,W=..), nothing else.
_SAFE_GUID = re.compile(r"^[A-Za-z0-9._,=-]{1,200}$")
_KEYWORD = re.compile(r"^[\x21-\x7e]{1,64}$")
DOVEADM_TIMEOUT = 600


class MailSnapshotError(RuntimeError):
    """doveadm failed, or a message's metadata is not something we would write to disk.
    `returncode`: doveadm's exit status, when it ran (dsync's 2: "run it again")."""

    def __init__(self, message: str, returncode: int | None = None):
        super().__init__(message)
        self.returncode = returncode


@dataclass(frozen=True)
class SnapMessage:
    folder: str  # the IMAP name, "/"-separated ("INBOX", "Archive/2024")
    guid: str
    flags: tuple[str, ...]  # system flags, e.g. ("\\Seen", "\\Flagged")
    keywords: tuple[str, ...]
    date: int  # internal date, Unix seconds
    size: int
    path: Path | None = None  # where the copy lies (snapshots only)


@dataclass
class _Folder:
    keywords: list[str] = field(default_factory=list)


def doveadm(dovecot_conf: Path, *args: str) -> str:
    """Run doveadm against the node's Dovecot; stdout, or MailSnapshotError with stderr."""
    argv = ["doveadm", "-c", str(dovecot_conf), *args]
    try:
        proc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                              timeout=DOVEADM_TIMEOUT, check=False)
    except (FileNotFoundError, subprocess.TimeoutExpired) as exc:
        raise MailSnapshotError(f"doveadm {args[0]}: {exc}") from None
    if proc.returncode != 0:
        stderr = proc.stderr.decode(errors="replace").strip()
        command = " ".join(args[:3])
        raise MailSnapshotError(f"doveadm {command} failed ({proc.returncode}): {stderr}",
                                proc.returncode)
    return proc.stdout.decode(errors="replace")


def private_dir(prefix: str) -> Path:
    """A fresh directory only root and the mail user can read (doveadm runs as the mail user)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    os.chown(path, MAIL_UID, MAIL_GID)
    return path


def snapshot_mailbox(dovecot_conf: Path, user: str, workdir: Path) -> Path:
    """Copy `user`'s mail into `workdir`/m with dsync; returns that maildir's root."""
    root = workdir / "m"
    # The copy is thrown away after the upload: no fsync per message (the mailbox itself is
    # only read).
    doveadm(dovecot_conf, "-o", "mail_fsync=never", "backup", "-u", user,
            f"maildir:{root}:LAYOUT=fs")
    return root


def walk_maildir(root: Path) -> Iterator[SnapMessage]:
    """Every message of a LAYOUT=fs maildir copy, folder by folder, in a stable order."""
    for folder_dir in sorted(_folder_dirs(root)):
        rel = folder_dir.relative_to(root).as_posix()
        folder = INBOX if rel == "." else imap_utf7_decode(rel)
        keywords = _read_keywords(folder_dir / KEYWORDS_FILE)
        for part in ("cur", "new"):
            for entry in sorted(os.scandir(folder_dir / part), key=lambda e: e.name):
                if entry.is_file():
                    yield _message(folder, entry, keywords)


def folders_of(root: Path) -> list[str]:
    """The IMAP names of every folder in the copy, empty ones included."""
    names = []
    for folder_dir in sorted(_folder_dirs(root)):
        rel = folder_dir.relative_to(root).as_posix()
        names.append(INBOX if rel == "." else imap_utf7_decode(rel))
    return names


def _folder_dirs(root: Path) -> Iterator[Path]:
    for dirpath, dirnames, _ in os.walk(root):
        if "cur" in dirnames:
            yield Path(dirpath)
        dirnames[:] = [d for d in dirnames if d not in MAILDIR_PARTS]


def _message(folder: str, entry: os.DirEntry, keywords: dict[str, str]) -> SnapMessage:
    base, _, info = entry.name.partition(":2,")
    stat = entry.stat()
    flags = tuple(SYSTEM_FLAGS[c] for c in info if c in SYSTEM_FLAGS)
    words = tuple(keywords[c] for c in info if c in keywords)
    return SnapMessage(folder=folder, guid=base, flags=flags, keywords=words,
                       date=int(stat.st_mtime), size=stat.st_size, path=Path(entry.path))


def _read_keywords(path: Path) -> dict[str, str]:
    """dovecot-keywords: "<index> <name>" lines; index 0 is the letter a, 1 b, …"""
    try:
        lines = path.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return {}
    found = {}
    for line in lines:
        index, _, name = line.partition(" ")
        if index.isdigit() and int(index) < 26 and name:
            found[chr(ord("a") + int(index))] = name
    return found


def existing_messages(dovecot_conf: Path, user: str) -> set[tuple[str, str]]:
    """(folder, GUID) of every message the mailbox holds now."""
    out = doveadm(dovecot_conf, "-f", "tab", "fetch", "-u", user, "mailbox guid", "all")
    present = set()
    for line in out.splitlines()[1:]:  # the header: mailbox, guid
        folder, sep, guid = line.rpartition("\t")
        if sep:
            present.add((folder, guid))
    return present


def stage_maildir(staging: Path, messages: Iterable[tuple[SnapMessage, Path]]) -> int:
    """Write (message, file with its bytes) pairs as a LAYOUT=fs maildir for `doveadm import`.
    The files are moved in (they are the staging copies). Returns how many were staged."""
    folders: dict[str, _Folder] = {}
    count = 0
    for message, source in messages:
        folder_dir = _folder_dir(staging, message.folder)
        state = folders.get(message.folder)
        if state is None:
            state = folders[message.folder] = _Folder()
            for part in MAILDIR_PARTS:
                (folder_dir / part).mkdir(parents=True, exist_ok=True)
        target = folder_dir / "cur" / f"{_safe_guid(message.guid)}:2,{_info(message, state)}"
        os.replace(source, target)
        os.utime(target, (message.date, message.date))
        count += 1
    for name, state in folders.items():
        lines = "".join(f"{i} {word}\n" for i, word in enumerate(state.keywords))
        (_folder_dir(staging, name) / KEYWORDS_FILE).write_text(lines)
    _chown_tree(staging)
    return count


def import_maildir(dovecot_conf: Path, user: str, staging: Path) -> None:
    """Hand a staged maildir to Dovecot: messages keep GUID, flags, keywords and date."""
    if any(staging.iterdir()):
        doveadm(dovecot_conf, "import", "-u", user, f"maildir:{staging}:LAYOUT=fs", "", "all")


def ensure_folders(dovecot_conf: Path, user: str, folders: Iterable[str]) -> None:
    """Create folders that are missing (an empty folder is part of the mailbox too)."""
    out = doveadm(dovecot_conf, "mailbox", "list", "-u", user)
    have = set(out.splitlines())
    for name in folders:
        if name not in have:
            doveadm(dovecot_conf, "mailbox", "create", "-u", user, name)


def wipe_mail(dovecot_conf: Path, user: str) -> None:
    """Expunge every message of every folder (tests and a deliberate re-seed)."""
    doveadm(dovecot_conf, "expunge", "-u", user, "mailbox", "*", "all")


def _folder_dir(staging: Path, folder: str) -> Path:
    if folder == INBOX:
        return staging
    parts = folder.split("/")
    if any(part in ("", ".", "..") or part in MAILDIR_PARTS for part in parts):
        raise MailSnapshotError(f"refusing the folder name {folder!r}")
    return staging.joinpath(*(imap_utf7_encode(part) for part in parts))


def _safe_guid(guid: str) -> str:
    if not _SAFE_GUID.match(guid) or guid in (".", ".."):
        raise MailSnapshotError(f"refusing the message GUID {guid!r}")
    return guid


def _info(message: SnapMessage, folder: _Folder) -> str:
    letters = sorted(FLAG_LETTERS[f] for f in message.flags if f in FLAG_LETTERS)
    for word in message.keywords:
        if not _KEYWORD.match(word):
            raise MailSnapshotError(f"refusing the keyword {word!r}")
        if word not in folder.keywords:
            if len(folder.keywords) >= 26:
                continue  # maildir has 26 keyword letters per folder; the rest are dropped
            folder.keywords.append(word)
        letters.append(chr(ord("a") + folder.keywords.index(word)))
    return "".join(sorted(set(letters)))


def _chown_tree(root: Path) -> None:
    for dirpath, dirnames, filenames in os.walk(root):
        os.chown(dirpath, MAIL_UID, MAIL_GID)
        for name in dirnames + filenames:
            os.chown(os.path.join(dirpath, name), MAIL_UID, MAIL_GID)


# --- modified UTF-7 (RFC 3501 5.1.3): how LAYOUT=fs names folders on disk --------------------


def imap_utf7_decode(name: str) -> str:
    def decode(match: re.Match) -> str:
        chunk = match.group(1)
        if not chunk:
            return "&"
        raw = chunk.replace(",", "/")
        raw += "=" * (-len(raw) % 4)
        return base64.b64decode(raw).decode("utf-16-be")

    return re.sub(r"&([A-Za-z0-9+,]*)-", decode, name)


def imap_utf7_encode(name: str) -> str:
    out, pending = [], []

    def flush() -> None:
        if pending:
            data = "".join(pending).encode("utf-16-be")
            out.append("&" + base64.b64encode(data).decode().rstrip("=").replace("/", ",") + "-")
            pending.clear()

    for char in name:
        if 0x20 <= ord(char) <= 0x7E:
            flush()
            out.append("&-" if char == "&" else char)
        else:
            pending.append(char)
    flush()
    return "".join(out)
