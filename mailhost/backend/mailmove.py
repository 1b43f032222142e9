"""A mailbox's mail pulled from another node's Dovecot, and a moved mailbox's maildir removed.

The node a domain moves to runs dsync against the source node's doveadm server over TCP
(`service doveadm` there, the install's doveadm password): first `doveadm backup -R`, which
makes the local copy identical to the source's (while the source still takes the domain's
mail, the target takes none, so nothing local can be lost), later `doveadm sync`, two-way,
which merges what reached either side since (by message GUID: nothing is copied twice).
Folders, flags, keywords, UIDs and UIDVALIDITY come along, so IMAP clients keep their caches.

No ORM, no settings: the portal's move service decides who copies what from where.
"""

import shutil
from pathlib import Path

from mailhost.backend.mailsnap import doveadm


def pull_mailbox(dovecot_conf: Path, user: str, host: str, port: int, *, mirror: bool) -> None:
    """Copy `user`'s mail from the doveadm server at host:port into this node's mailbox.
    `mirror`: make this side identical to the remote (the first copy); else merge both ways.
    Raises MailSnapshotError (doveadm's message) on failure; safe to run again."""
    remote = f"tcp:{host}:{port}"
    if mirror:
        doveadm(dovecot_conf, "backup", "-R", "-u", user, remote)
    else:
        doveadm(dovecot_conf, "sync", "-u", user, remote)


def remove_homes(state_dir: Path, home_ids: list[str]) -> int:
    """Remove the homes (maildirs, Sieve scripts) `home_ids` below the node's mail/; returns
    how many were there. Only direct children of mail/ named by an id: nothing else."""
    mail_root = Path(state_dir) / "mail"
    removed = 0
    for home_id in home_ids:
        home = mail_root / home_id
        if not home_id or "/" in home_id or home_id in (".", "..") or home.parent != mail_root:
            raise ValueError(f"refusing the home id {home_id!r}")
        if home.exists():
            shutil.rmtree(home)
            removed += 1
    return removed
