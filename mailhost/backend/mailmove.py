"""A mailbox's mail pulled from another node's Dovecot, and a moved mailbox's maildir removed.

The node a domain moves to runs dsync against the source node's doveadm server over TCP
(`service doveadm` there, the install's doveadm password): first `doveadm backup -R`, which
makes the local copy identical to the source's (while the source still takes the domain's
mail, the target takes none, so nothing local can be lost), after the switch `doveadm sync -1
-R`, which brings over what reached the source since, by message GUID (nothing is copied
twice), and leaves the source as it is.
Folders, flags, keywords, UIDs and UIDVALIDITY come along, so IMAP clients keep their caches.

No ORM, no settings: the portal's move service decides who copies what from where.
"""

import shutil
from pathlib import Path

from mailhost.backend.mailsnap import MailSnapshotError, doveadm

# dsync's exit status 2: done without errors but not perfectly in sync (mail arrived while it
# ran, UIDs conflicted); running it again fixes that. At most this many runs per mailbox.
DSYNC_RUNS = 4


def pull_mailbox(dovecot_conf: Path, user: str, host: str, port: int, *, mirror: bool) -> None:
    """Copy `user`'s mail from the doveadm server at host:port into this node's mailbox.
    `mirror`: make this side identical to the remote (the first copy, `doveadm backup -R`);
    else bring over what the remote has and this side lacks without changing the remote
    (`doveadm sync -1 -R`, Dovecot's own last step of a migration: after the switch this side
    receives the mail, the remote only has what reached it before). Raises MailSnapshotError
    (doveadm's message) on failure; safe to run again."""
    remote = f"tcp:{host}:{port}"
    args = ("backup", "-R") if mirror else ("sync", "-1", "-R")
    for run in range(1, DSYNC_RUNS + 1):
        try:
            doveadm(dovecot_conf, *args, "-u", user, remote)
            return
        except MailSnapshotError as exc:
            if exc.returncode != 2 or run == DSYNC_RUNS:
                raise


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
