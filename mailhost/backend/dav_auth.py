"""Radicale's auth plugin on the node: Radicale's own `dovecot` auth, and on every request
Dovecot accepts, the principal's home, `dav/` and link made if missing (`dav.ensure_principal`).

Radicale loads it by module name (`[auth] type = mailhost.backend.dav_auth` in the rendered
radicale.conf) in the DAV daemon (`python -m mailhost.backend.dav`). It runs before Radicale
looks for the user's principal, so the principal is found (or created) through the link, in
the mailbox's home. The node's paths come from Radicale's storage folder
(`<state dir>/dav/collections`): no setting of its own.

Per request it costs one indexed read of the node's lookup store, a readlink and two mkdir
attempts, beside the Dovecot auth round trip Radicale makes anyway. When the link cannot be
made (a filesystem error), the request is refused rather than letting Radicale keep the
collections in its own tree, outside the home (they would not go to archive/ with it).
"""

import logging
import sqlite3
import threading
from pathlib import Path

from radicale.auth import dovecot

from mailhost.backend import dav
from mailhost.backend.config import MAIL_GID, MAIL_UID
from mailhost.backend.lookup import LOOKUP_DB

logger = logging.getLogger(__name__)


def state_dir_of(filesystem_folder: str) -> Path:
    """The node's state dir from Radicale's storage folder, as dav.render_radicale_conf
    writes it."""
    folder = Path(filesystem_folder)
    if folder.parts[-len(Path(dav.DAV_FOLDER).parts):] != Path(dav.DAV_FOLDER).parts:
        raise RuntimeError(f"Radicale's storage folder {folder} is not the node's {dav.DAV_FOLDER}")
    return folder.parents[len(Path(dav.DAV_FOLDER).parts) - 1]


class Auth(dovecot.Auth):
    def __init__(self, configuration) -> None:
        super().__init__(configuration)
        self._state_dir = state_dir_of(configuration.get("storage", "filesystem_folder"))
        self._lookup_db = self._state_dir / LOOKUP_DB
        # One principal made at a time (requests are threads; BaseAuth has its own _lock).
        self._principal_lock = threading.Lock()

    def _login_ext(self, login, password, context) -> str:
        user = super()._login_ext(login, password, context)
        if not user:
            return user
        try:
            with self._principal_lock:
                dav.ensure_principal(self._state_dir, self._lookup_db, user, uid=MAIL_UID,
                                     gid=MAIL_GID)
        except (OSError, ValueError, sqlite3.Error):
            logger.exception("DAV: no home link for %s; request refused", user)
            return ""
        return user
