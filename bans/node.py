"""The ban store of the node this portal runs beside, for the portal's own logins.

The portal's two logins (operators at /accounts/login/ and Django admin, mailbox holders at
/mailbox/) count failures into, and are refused by, the same node-local store that Dovecot's
policy server and Postfix use (MAILHOST_NODE_STATE_DIR): one ban covers every service.
A single-box install has one node, on this host. A multi-node install will need the portal's
failures sent to every node (or a shared ban service) and the nodes' bans gathered for the
pages; today the portal talks to the store on its own host only.

The store is a file on this host; if it cannot be opened the web logins carry on without
bans (logged), as Dovecot does when its policy server is down.
"""

import logging
import sqlite3

from mailhost.backend.bans import Ban, BanStore
from mailhost.backend.config import NodeConfig

logger = logging.getLogger(__name__)

_ready: set[str] = set()


def node_store() -> BanStore:
    cfg = NodeConfig.from_settings()
    store = BanStore(cfg.bans_db, cfg.ban_policy)
    if str(store.path) not in _ready or not store.path.exists():
        store.ensure_schema()  # the node's stack may never have started on this host
        _ready.add(str(store.path))
    return store


def banned(ip: str | None) -> Ban | None:
    """The active ban of a web client's address, if any."""
    if not ip:
        return None
    try:
        return node_store().ban(ip)
    except (sqlite3.Error, OSError, ValueError) as exc:
        logger.warning("ban check skipped for %s: %s", ip, exc)
        return None


def login_failed(ip: str | None, account: str, service: str) -> Ban | None:
    """Count a failed web login; return the ban it started, if it started one."""
    if not ip:
        return None
    try:
        ban = node_store().record_failure(ip=ip, account=account, service=service)
    except (sqlite3.Error, OSError, ValueError) as exc:
        logger.warning("failed login from %s not counted: %s", ip, exc)
        return None
    if ban is not None:
        logger.warning("banned %s after %d failed logins", ban.ip, ban.failures)
    return ban
