"""Calendars and contacts on the node: Radicale (CalDAV/CardDAV), served by the edge at /dav/.

- **Who may log in** is Dovecot's business: Radicale's `dovecot` auth asks the node's Dovecot on
  a socket of its own (`run/dovecot/auth-dav`), so the mailbox password and app passwords work
  exactly as for IMAP, a suspended or deleted mailbox is refused, and Dovecot's auth policy
  (the ban policy server) sees every attempt as service `radicale` with the client's address,
  which the edge passes in `X-Remote-Addr`. Nothing of the portal is asked: calendars keep
  working with the portal, worker, database and Redis down.
- **What a user sees**: Radicale's `owner_only` rights: their own principal
  (`/dav/<address>/`) and the collections in it, nothing of another user's.
- **Where it is stored**: in the mailbox's home, `mail/<home>/dav/`. Radicale's tree
  (`dav/collections/collection-root/`) holds one link per mailbox that has used DAV,
  `<address>` → `../../../mail/<home>/dav`. So a deleted mailbox's collections move to
  `archive/` with its mail and come back with it on restore, are purged with it, and a renamed
  mailbox keeps them (its home is keyed by id, not by address).
- **Made on first use**: no reconcile pass makes a home, its `dav/` or a link. Dovecot makes a
  home on the first use of the mailbox's storage (a delivery, a client opening a folder); the
  DAV server makes the home (if Dovecot has not yet), its `dav/` and the link on the first
  request Dovecot accepts for that address (`mailhost.backend.dav_auth`, Radicale's auth
  plugin: `ensure_principal`), before Radicale looks for the principal. A node of a million
  mailboxes is therefore built from empty without a million homes. The passes only take
  away: a deleted (or unverified) mailbox's link, and a link whose address is gone from the
  node's store or now names another home (`sync_links`, `sync_links_from_store`); the next
  request of its owner makes the right one.
- **How it runs**: `python -m mailhost.backend.dav --config dav/dav.json` (the stack runner's
  Python daemon "dav"): it writes its pid and runs Radicale's own server on a loopback port,
  as root like the node's other Python daemons. It cannot drop to the mail user: the project's
  interpreter and packages may live where only root reads (a checkout in /root, a pyenv), and
  Python imports lazily while it serves. Only the edge reaches it (loopback).

The renderers are pure (golden-file tested); the link functions and `main` do the I/O.
"""

import argparse
import json
import logging
import os
import re
import sqlite3
import sys
from collections.abc import Iterable
from pathlib import Path

from mailhost.backend import lookup
from mailhost.backend.model import MailboxSnap

logger = logging.getLogger(__name__)

DAV_CONFIG = "dav/dav.json"
RADICALE_CONFIG = "dav/radicale.conf"
DAV_PID = "run/dav/dav.pid"
# Radicale's filesystem_folder; its collection-root/ holds one link per mailbox.
DAV_FOLDER = "dav/collections"
COLLECTION_ROOT = f"{DAV_FOLDER}/collection-root"
# Radicale's auth plugin: its dovecot auth plus the principal's link (dav_auth.py).
AUTH_PLUGIN = "mailhost.backend.dav_auth"
# The collections' directory inside a mailbox home (mail/<home>/dav).
HOME_DAV_DIR = "dav"
# The Dovecot auth socket Radicale asks (a client listener, root only).
DOVECOT_AUTH_SOCKET = "run/dovecot/auth-dav"
# Where the edge serves it, and the well-known URIs (RFC 6764) it redirects there.
URL_PREFIX = "/dav"
WELL_KNOWN = ("/.well-known/caldav", "/.well-known/carddav")

_SAFE_PATH = re.compile(r"^/[A-Za-z0-9._/-]+$")
_SAFE_ADDRESS = re.compile(r"^[a-z0-9][a-z0-9._+-]*@[a-z0-9][a-z0-9.-]*[a-z0-9]$")
_SAFE_HOME = re.compile(r"^[0-9a-f-]{8,64}$")


def _checked(state_dir: Path | str) -> str:
    path = str(state_dir)
    if not _SAFE_PATH.match(path) or ".." in path:
        raise ValueError(f"refusing to render DAV paths below {path!r}")
    return path


def render_radicale_conf(*, state_dir: Path | str, port: int) -> str:
    """Radicale's config: loopback only, Dovecot auth, owner-only rights, no web interface."""
    s = _checked(state_dir)
    return "\n".join([
        "# Managed by Mailhost (mailhost/backend/dav.py); local edits are overwritten.",
        "[server]",
        f"hosts = 127.0.0.1:{int(port)}",
        "# The edge passes the path unchanged; Radicale strips this prefix (behind a proxy).",
        f"script_name = {URL_PREFIX}",
        "max_connections = 20",
        "max_content_length = 10000000",
        "timeout = 30",
        "",
        "[auth]",
        "# Radicale's dovecot auth, which also makes the principal's home and link on first use.",
        f"type = {AUTH_PLUGIN}",
        "dovecot_connection_type = AF_UNIX",
        f"dovecot_socket = {s}/{DOVECOT_AUTH_SOCKET}",
        "# The client's address for Dovecot's penalty and the ban policy: the edge sets this",
        "# header to the address it saw (a client's own X-Remote-Addr never reaches Radicale).",
        "remote_ip_source = X-Remote-Addr",
        "# Logins are names of mailboxes, which are lower case; Dovecot folds case too.",
        "lc_username = True",
        "# Radicale's own pause after a failed login (Dovecot adds its auth_failure_delay).",
        "delay = 1",
        "# No cache: a password change or a suspension counts from the next request.",
        "cache_logins = False",
        "",
        "[rights]",
        "type = owner_only",
        "",
        "[storage]",
        "type = multifilesystem",
        f"filesystem_folder = {s}/{DAV_FOLDER}",
        "folder_umask = 0077",
        "",
        "[web]",
        "type = none",
        "",
        "[logging]",
        "level = warning",
        "mask_passwords = True",
        "",
        "[headers]",
        "X-Content-Type-Options = nosniff",
        "",
    ])


def render_dav_json(*, state_dir: Path | str) -> str:
    """The daemon's own config: Radicale's config file and its pid file."""
    s = _checked(state_dir)
    return json.dumps(
        {
            "pid_file": f"{s}/{DAV_PID}",
            "radicale_config": f"{s}/{RADICALE_CONFIG}",
        },
        indent=2,
        sort_keys=True,
    ) + "\n"


# --- the per-mailbox links -------------------------------------------------------------------


def link_target(home_id: str) -> str:
    """A principal's link, relative to collection-root/: the home's dav/ directory."""
    if not _SAFE_HOME.match(home_id):
        raise ValueError(f"refusing a DAV link to home {home_id!r}")
    return f"../../../mail/{home_id}/{HOME_DAV_DIR}"


def sync_links(state_dir: Path, mailboxes: Iterable[MailboxSnap]) -> list[str]:
    """The incremental pass: the links of these mailboxes' addresses, looked at one by one.

    A deleted (or unverified) mailbox loses its link once its home moved to archive/ (its
    collections went with it); a live one loses a link that points at another home (its address
    was another mailbox's). Nothing is made: the owner's next DAV request makes the link
    (`ensure_principal`). Its cost follows the change, not the number of mailboxes. Returns
    what it changed, in words."""
    root = state_dir / COLLECTION_ROOT
    wanted: dict[str, str] = {}
    gone: dict[str, str] = {}
    for mailbox in mailboxes:
        if not _SAFE_ADDRESS.match(mailbox.address):
            continue  # a catch-all or odd name cannot log in: no principal
        if mailbox.deleted or not mailbox.domain_verified:
            gone[mailbox.address] = mailbox.home_id
        else:
            wanted[mailbox.address] = mailbox.home_id
    changed = []
    for address, home_id in sorted(wanted.items()):
        current = _link_at(root / address)
        if current is not None and current != link_target(home_id):
            (root / address).unlink()
            changed.append(f"- dav link {address} (another home's)")
    for address, home_id in sorted(gone.items()):
        if address not in wanted and _link_at(root / address) == link_target(home_id):
            (root / address).unlink()
            changed.append(f"- dav link {address}")
    return changed


def sync_links_from_store(state_dir: Path, lookup_db: Path) -> int:
    """The full pass: the links in collection-root/ checked against the node's committed lookup
    store, whose mailboxes table holds exactly the live mailboxes of verified domains. One walk
    of the directory, asking the store about each link's name: a link whose address is gone
    (deleted, renamed, purged) or now names another home goes. Its cost follows the number of
    mailboxes that used DAV, not the node's size, and nothing is held per mailbox; a node built
    from empty has no links to walk. Returns how many links it removed."""
    root = state_dir / COLLECTION_ROOT
    if not root.is_dir():
        return 0  # nobody has used DAV on this node yet
    mail_root = f"{state_dir}/mail/"
    changed = 0
    conn = lookup.connect(lookup_db)
    try:
        with os.scandir(root) as entries:
            for entry in entries:
                if entry.name.startswith(".") or not entry.is_symlink():
                    continue
                found = conn.execute(
                    "SELECT home FROM mailboxes WHERE address = ?", (entry.name,)).fetchone()
                if found is None or not _links_home(found[0], mail_root, _link_at(entry.path)):
                    Path(entry.path).unlink(missing_ok=True)  # or its owner's request did
                    changed += 1
    finally:
        conn.close()
    return changed


def _links_home(home: str, mail_root: str, target: str | None) -> bool:
    return (
        home.startswith(mail_root)
        and _SAFE_HOME.match(home[len(mail_root):]) is not None
        and target == link_target(home[len(mail_root):])
    )


def ensure_principal(state_dir: Path, lookup_db: Path, address: str, *, uid: int,
                     gid: int) -> bool:
    """On a request Dovecot accepted for `address`: its home (owned by `uid`/`gid`, if Dovecot
    has not made it yet), the home's dav/ and the link Radicale finds them through, as the
    node's lookup store says. False when the store has no home below mail/ for the address
    (nothing made: Radicale then keeps that principal's collections in its own tree)."""
    if not _SAFE_ADDRESS.match(address):
        return False  # a catch-all or odd name: no principal link
    conn = sqlite3.connect(f"file:{lookup_db}?mode=ro", uri=True, timeout=10)  # never creates
    try:
        found = conn.execute("SELECT home FROM mailboxes WHERE address = ?", (address,)).fetchone()
    finally:
        conn.close()
    mail_root = f"{state_dir}/mail/"
    if found is None or not found[0].startswith(mail_root):
        return False
    home_id = found[0][len(mail_root):]
    if not _SAFE_HOME.match(home_id):
        return False
    root = state_dir / COLLECTION_ROOT
    root.mkdir(parents=True, exist_ok=True)
    _ensure_home_dav(state_dir, home_id, uid, gid)  # also when the link is there already
    _ensure_link(root, address, home_id)
    return True


def _ensure_link(root: Path, address: str, home_id: str) -> bool:
    target = link_target(home_id)
    path = root / address
    current = _link_at(path)
    if current == target:
        return False
    if current is None:
        # Usually nothing is there (a first request): make the link in place, one syscall
        # instead of a temporary and a rename.
        try:
            os.symlink(target, path)
            return True
        except FileExistsError:
            if _link_at(path) == target:
                return False  # made meanwhile (another request of the same user)
            # else a real directory (made by Radicale): _replace_link deals with it
    return _replace_link(root, address, target)


def _link_at(path: Path | str) -> str | None:
    try:
        return os.readlink(path)
    except OSError:  # nothing there, or a real directory
        return None


def _ensure_home_dav(state_dir: Path, home_id: str, uid: int, gid: int) -> None:
    home = os.path.join(state_dir, "mail", home_id)
    for directory in (home, os.path.join(home, HOME_DAV_DIR)):
        try:
            os.mkdir(directory, 0o700)
        except FileExistsError:
            continue  # the mail user's already (Dovecot's, or ours)
        os.chown(directory, uid, gid)


def _replace_link(root: Path, address: str, target: str) -> bool:
    """Point collection-root/<address> at `target` (atomically). A real directory there was
    made by Radicale for a request that found no link (a node from before the links, or one
    whose link could not be made): its content moves into the home when the home has none yet,
    else it is left alone (and logged)."""
    path = root / address
    if path.is_dir() and not path.is_symlink():
        home_dav = (root / target).resolve()
        if any(home_dav.iterdir()):
            logger.warning("DAV: %s holds collections and so does its home; left as it is", path)
            return False
        home_dav.rmdir()
        os.replace(path, home_dav)
    temporary = root / f".{address}.link"
    temporary.unlink(missing_ok=True)
    os.symlink(target, temporary)
    os.replace(temporary, path)
    return True


# --- the daemon ------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, type=Path)
    args = parser.parse_args(argv)
    values = json.loads(args.config.read_text())
    pid_file = Path(values["pid_file"])
    pid_file.write_text(f"{os.getpid()}\n")
    os.umask(0o077)
    from radicale.__main__ import run  # Radicale's own server, signals and logging

    sys.argv = ["radicale", "--config", values["radicale_config"]]
    try:
        run()
    finally:
        pid_file.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
