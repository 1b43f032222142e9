"""The stack runner: OpenDKIM, Dovecot, Postfix and the node's Python daemons, configured from a
state directory.

`Stack(cfg).start()` prepares the directory (ownership, lookup store, certificate, empty DKIM
tables), writes the static config, starts whatever is not running as a real daemon (so
`manage.py stack start` returns and a later `manage.py stack stop` from another process stops
it) and waits until every listener answers. `stop()` stops all three and waits until no process
of the stack is left. Every Postfix and Dovecot tool gets `-c`: there is no system instance.
"""

import base64
import contextlib
import dataclasses
import grp
import hashlib
import logging
import os
import pwd
import secrets
import signal
import socket
import sqlite3
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from mailhost.backend import lookup, mailcrypt, senders
from mailhost.backend.apply import FileSpec, ManagedFiles
from mailhost.backend.bans import BanStore
from mailhost.backend.config import (
    BOUNCE_SOCKET,
    CERT_WATCH_CONFIG,
    DOVEADM_PASSWORD_FILE,
    EVENT_AGENT_CONFIG,
    EVENTS_DB,
    MAIL_GID,
    MAIL_UID,
    OPENDKIM_USER,
    SENDER_POLICY_CONFIG,
    SENDER_POLICY_SOCKET,
    NodeConfig,
    render_static_files,
    webmail_config,
)
from mailhost.backend.dav import COLLECTION_ROOT, DAV_CONFIG, DAV_FOLDER
from mailhost.backend.edge import (
    ACME_WEBROOT,
    EDGE_CONF,
    EDGE_PID,
    EDGE_SITES,
    EDGE_TEMP,
)
from mailhost.backend.files import write_atomic
from mailhost.backend.forwarding import (
    ARC_CONF,
    ARC_DIR,
    POSTSRSD_PID,
    POSTSRSD_USER,
    SRS_SECRETS,
    new_secret,
    render_arc_conf,
    render_srs_secrets,
)
from mailhost.backend.inbound import (
    FIXTURE_ZONES_DIR,
    GREYLIST_BYPASS_MAP,
    GUARD_CONFIG,
    GUARD_STATUS,
    HOSTED_ZONE_FILE,
    PIPE_PROGRAMS,
    RSPAMD_CONFDIR,
    RSPAMD_CONTROLLER_SOCKET,
    RSPAMD_MILTER_SOCKET,
    RSPAMD_PID,
    RSPAMD_USER,
    SETTINGS_MAP,
    SIEVE_BIN_DIR,
    UNBOUND_PID,
    UNBOUND_USER,
    rspamd_hs_cache,
)
from mailhost.backend.inbound_guard import CLOSED_MAP, dns_answers
from mailhost.backend.mailcrypt import MAIL_CRYPT_DB
from mailhost.backend.peers import render_peer_transport
from mailhost.backend.quotas import QUOTAS_DB
from mailhost.backend.relays import SECRET_FILES as RELAY_SECRET_FILES
from mailhost.backend.relays import render_relay_files
from mailhost.backend.senders import SENDERS_DB
from mailhost.backend.suppressions import SUPPRESSIONS_DB
from mailhost.backend.tls import ensure_certificate
from mailhost.backend.tls_policy import MTASTS_CONFIG, MTASTS_SOCKET, POLICY_MAP
from mailhost.backend.webmail import (
    PHP_FPM,
    PLUGINS,
    ROUNDCUBE_DEFAULTS,
    ROUNDCUBE_MIMETYPES,
    ROUNDCUBE_SHARE,
    ROUNDCUBE_SQL,
    WEBMAIL_APP,
    WEBMAIL_DB,
    WEBMAIL_DES_KEY,
    WEBMAIL_FPM_CONF,
    WEBMAIL_FPM_PID,
    WEBMAIL_FPM_SOCKET,
    WEBMAIL_LOG_DIR,
    WEBMAIL_MASTER_SECRET,
    WEBMAIL_MASTER_USERS,
    WEBMAIL_PLUGIN,
    WEBMAIL_SSO_DB,
    WEBMAIL_TEMP,
    WEBMAIL_USER,
    SsoStore,
    render_master_users,
)

logger = logging.getLogger(__name__)



@dataclass(frozen=True)
class PythonDaemon:
    """A node daemon written in Python: run with the portal's own interpreter as
    `python -m <module> --config <state dir>/<config>`, it writes its pid to
    run/<name>/<name>.pid and logs to log/<name>.log. One entry in PYTHON_DAEMONS each."""

    module: str
    config: str  # relative to the state dir; rendered by mailhost.backend.config
    what: str  # its name in readiness errors
    ready: Callable[["Stack"], bool]


PYTHON_DAEMONS: dict[str, PythonDaemon] = {
    # The sender-policy milter: holds From:/Sender: to the login before OpenDKIM signs.
    "sender-policy": PythonDaemon(
        module="mailhost.backend.milter",
        config=SENDER_POLICY_CONFIG,
        what="Sender policy milter",
        ready=lambda stack: _unix_accepts(stack.cfg.path(SENDER_POLICY_SOCKET)),
    ),
    # Dovecot's auth policy server: counts failed logins, refuses banned addresses.
    "banpolicy": PythonDaemon(
        module="mailhost.backend.banpolicy",
        config="banpolicy/banpolicy.json",
        what="Ban policy server",
        ready=lambda stack: _http_ok(stack.address("authpolicy"), "/health"),
    ),
    # Reloads Postfix, Dovecot and the edge when a certificate they read changes (certwatch.py).
    "cert-watch": PythonDaemon(
        module="mailhost.backend.certwatch",
        config=CERT_WATCH_CONFIG,
        what="Certificate watcher",
        ready=lambda stack: stack.pid("cert-watch") is not None,
    ),
    # Greylisting's circuit breaker and the mail-flow counters (inbound_guard.py).
    "inbound-guard": PythonDaemon(
        module="mailhost.backend.inbound_guard",
        config=GUARD_CONFIG,
        what="Inbound guard",
        ready=lambda stack: stack.cfg.path(GUARD_STATUS).exists(),
    ),
    # MTA-STS policies for Postfix's outbound TLS, through its socketmap (mtasts.py).
    "mta-sts": PythonDaemon(
        module="mailhost.backend.mtasts",
        config=MTASTS_CONFIG,
        what="MTA-STS resolver",
        ready=lambda stack: _unix_accepts(stack.cfg.path(MTASTS_SOCKET)),
    ),
    # CalDAV/CardDAV: Radicale on loopback; the edge serves it at /dav/ (dav.py).
    "dav": PythonDaemon(
        module="mailhost.backend.dav",
        config=DAV_CONFIG,
        what="Radicale (CalDAV/CardDAV)",
        ready=lambda stack: _http_answers(stack.address("dav")),
    ),
    # Delivery events: follows Postfix's log, takes VERP bounces (events.py).
    "event-agent": PythonDaemon(
        module="mailhost.backend.events",
        config=EVENT_AGENT_CONFIG,
        what="Event agent",
        ready=lambda stack: _unix_accepts(stack.cfg.path(BOUNCE_SOCKET)),
    ),
}
# Start order: what Postfix and Dovecot talk to comes first.
DAEMONS = ("unbound", "opendkim", "rspamd", "postsrsd", *PYTHON_DAEMONS, "dovecot", "postfix",
           "webmail",
           "edge")
_EXECUTABLES = {
    "unbound": "/usr/sbin/unbound",
    "rspamd": "/usr/bin/rspamd",
    "opendkim": "/usr/sbin/opendkim",
    "postsrsd": "/usr/sbin/postsrsd",
    "dovecot": "/usr/sbin/dovecot",
    "postfix": "/usr/lib/postfix/sbin/master",
    "edge": "/usr/sbin/nginx",
    "webmail": PHP_FPM,
}
_ROUNDCUBE_INDEX = (b"<?php\n// Managed by Mailhost (mailhost/backend/stack.py).\n"
                    b"define('INSTALL_PATH', realpath(__DIR__ . '/..') . '/');\n"
                    b"include INSTALL_PATH . 'index.php';\n")
# Daemons get a clean environment: none of the portal's secrets (DATABASE_URL, …) leak in.
_DAEMON_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
# The project's code (not installed as a package): the Python daemons import it from here.
_PROJECT_ROOT = Path(__file__).resolve().parents[2]
# Rspamd's first start on an empty regex cache compiles it (~20 s on 2 cores); warm: ~1 s.
READY_TIMEOUT = 60.0
OPENDKIM_TERM_GRACE = 1.5  # its SIGTERM takes 4–5 s and it keeps no state (notes)


class StackError(RuntimeError):
    """A daemon failed to start, stop, validate or reload; the message says which and why."""


class Stack:
    def __init__(self, cfg: NodeConfig):
        self.cfg = cfg

    # --- paths --------------------------------------------------------------------------------

    @property
    def postfix_dir(self) -> Path:
        return self.cfg.path("postfix")

    @property
    def dovecot_conf(self) -> Path:
        return self.cfg.path("dovecot/dovecot.conf")

    @property
    def opendkim_conf(self) -> Path:
        return self.cfg.path("opendkim/opendkim.conf")

    @property
    def opendkim_socket(self) -> Path:
        return self.cfg.path("run/opendkim/opendkim.sock")

    @property
    def lmtp_socket(self) -> Path:
        return self.cfg.path("run/dovecot/lmtp")

    @property
    def daemons(self) -> tuple[str, ...]:
        """The daemons this node runs: webmail's php-fpm only when the edge serves it."""
        return tuple(d for d in DAEMONS if d != "webmail" or self.cfg.edge.webmail)

    def pid_file(self, daemon: str) -> Path:
        if daemon in PYTHON_DAEMONS:
            return self.cfg.path(f"run/{daemon}/{daemon}.pid")
        return {
            "postfix": self.cfg.path("spool/pid/master.pid"),
            "dovecot": self.cfg.path("run/dovecot/master.pid"),
            "opendkim": self.cfg.path("run/opendkim/opendkim.pid"),
            "rspamd": self.cfg.path(RSPAMD_PID),
            "unbound": self.cfg.path(UNBOUND_PID),
            "postsrsd": self.cfg.path(POSTSRSD_PID),
            "edge": self.cfg.path(EDGE_PID),
            "webmail": self.cfg.path(WEBMAIL_FPM_PID),
        }[daemon]

    def log_file(self, daemon: str) -> Path:
        return self.cfg.path(f"log/{daemon}.log")

    def address(self, port_name: str) -> tuple[str, int]:
        loopback = ("internal", "authpolicy", "resolver", "dav", "forward", "srs", "srs_reverse",
                    "stats")
        host = "127.0.0.1" if port_name in loopback else self.cfg.bind_address
        return host, self.cfg.ports[port_name]

    # --- preparing the state directory --------------------------------------------------------

    def prepare(self) -> None:
        """Directories with the owners the daemons need, the lookup store, TLS, DKIM tables."""
        postfix_gid = grp.getgrnam("postfix").gr_gid
        dkim = pwd.getpwnam(OPENDKIM_USER)
        self.cfg.state_dir.mkdir(parents=True, exist_ok=True)
        # mkdtemp makes 0700; Dovecot's login processes and Postfix must traverse it.
        os.chmod(self.cfg.state_dir, 0o755)  # noqa: S103 (no secret at this level)
        for rel in ("postfix", "dovecot", "opendkim", "tls", "spool", "lib", "run", "log"):
            _ensure_dir(self.cfg.path(rel), 0o755)
        _ensure_dir(self.cfg.path("lib/dovecot"), 0o750)
        _ensure_dir(self.cfg.path("lib/postfix"), 0o700, *_ids("postfix"))
        # Postfix opens the store read-write and creates -wal/-shm beside it (notes).
        _ensure_dir(self.cfg.lookup_db.parent, 0o2770, 0, postfix_gid)
        _ensure_dir(self.cfg.mail_root, 0o750, MAIL_UID, MAIL_GID)
        _ensure_dir(self.cfg.report_spool.parent, 0o750, MAIL_UID, MAIL_GID)
        _ensure_dir(self.cfg.path("run/opendkim"), 0o2750, dkim.pw_uid, postfix_gid)
        _ensure_dir(self.cfg.opendkim_keys_dir, 0o700, dkim.pw_uid, dkim.pw_gid)
        self._prepare_lookup(postfix_gid)
        self._prepare_bans(postfix_gid)
        self._prepare_senders(postfix_gid)
        # The organisations' mail_crypt keys: root's alone (Dovecot's auth-worker reads them).
        _ensure_dir(self.cfg.path(MAIL_CRYPT_DB).parent, 0o700, 0, 0)
        mailcrypt.ensure_store(self.cfg.path(MAIL_CRYPT_DB))
        self._prepare_inbound()
        self._prepare_edge()
        if self.cfg.edge.webmail:
            self._prepare_webmail()
        self._prepare_forwarding()
        for daemon in PYTHON_DAEMONS:
            _ensure_dir(self.cfg.path(f"run/{daemon}"), 0o755)
        self._prepare_dav()
        _ensure_dir(self.cfg.path(EVENTS_DB).parent, 0o750)  # root's: the agent and portal
        _ensure_dir(self.cfg.path(SUPPRESSIONS_DB).parent, 0o755)  # the portal writes it
        _ensure_dir(self.cfg.path(QUOTAS_DB).parent, 0o755)  # the portal and the milter
        self._prepare_relays(postfix_gid)
        _ensure_dir(self.cfg.path("mta-sts"), 0o755)
        if not self.cfg.path(POLICY_MAP).exists():  # the reconciler fills it; Postfix reads it
            write_atomic(self.cfg.path(POLICY_MAP), b"# no TLS policy overrides yet\n",
                         mode=0o644)
        for table in (self.cfg.opendkim_key_table, self.cfg.opendkim_signing_table):
            if not table.exists():  # the reconciler fills them; OpenDKIM needs them to start
                write_atomic(table, b"", mode=0o644)
        ensure_certificate(
            self.cfg.path("tls/cert.pem"), self.cfg.path("tls/key.pem"), self.cfg.hostname
        )

    def _prepare_inbound(self) -> None:
        """Rspamd's and unbound's directories (they drop to their own users), the maps the
        reconciler and the inbound guard fill, and the resolver's include files."""
        rspamd_uid, rspamd_gid = _ids(RSPAMD_USER)
        unbound_uid, unbound_gid = _ids(UNBOUND_USER)
        _ensure_dir(self.cfg.path("rspamd"), 0o755)
        _ensure_dir(self.cfg.path("rspamd/db"), 0o750, rspamd_uid, rspamd_gid)
        _ensure_dir(rspamd_hs_cache(self.cfg.state_dir, self.cfg.inbound), 0o755, rspamd_uid,
                    rspamd_gid)
        _ensure_dir(self.cfg.path("run/rspamd"), 0o755, rspamd_uid, rspamd_gid)
        _ensure_dir(self.cfg.path("run/unbound"), 0o755, unbound_uid, unbound_gid)
        _ensure_dir(self.cfg.path("inbound"), 0o755, rspamd_uid, rspamd_gid)
        _ensure_dir(self.cfg.path("unbound"), 0o755)
        _ensure_dir(self.cfg.path(FIXTURE_ZONES_DIR), 0o755)
        _ensure_dir(self.cfg.path(SIEVE_BIN_DIR), 0o755)
        _ensure_dir(self.cfg.path("sieve/global"), 0o755)
        for log, uid, gid in (("rspamd", rspamd_uid, rspamd_gid),
                              ("unbound", unbound_uid, unbound_gid)):
            path = self.log_file(log)
            path.touch(exist_ok=True)
            os.chown(path, uid, gid)
        empty = {
            SETTINGS_MAP: b"# no per-domain inbound policy yet\n",
            GREYLIST_BYPASS_MAP: CLOSED_MAP.encode(),
            HOSTED_ZONE_FILE: b"# no hosted domain records yet\n",
        }
        for rel, data in empty.items():
            if not self.cfg.path(rel).exists():  # the reconciler and the guard fill them
                write_atomic(self.cfg.path(rel), data, mode=0o644)

    def _prepare_forwarding(self) -> None:
        """postsrsd's secrets (root only: it reads them before it drops to nobody) and the ARC
        key directory (Rspamd's alone). Until the reconciler writes the portal's, a node has a
        secret of its own and verifies ARC without sealing: it starts and forwards alone."""
        _ensure_dir(self.cfg.path("srs"), 0o700)
        _ensure_dir(self.cfg.path("run/postsrsd"), 0o755)
        _ensure_dir(self.cfg.path(ARC_DIR), 0o700, *_ids(RSPAMD_USER))
        _ensure_dir(self.cfg.path(ARC_CONF).parent, 0o755)
        if not self.cfg.path(SRS_SECRETS).exists():
            secret = render_srs_secrets((new_secret(secrets.token_bytes(24)),))
            write_atomic(self.cfg.path(SRS_SECRETS), secret, mode=0o600)
        if not self.cfg.path(ARC_CONF).exists():
            arc_conf = render_arc_conf(str(self.cfg.state_dir), None).encode()
            write_atomic(self.cfg.path(ARC_CONF), arc_conf, mode=0o644)

    def _prepare_edge(self) -> None:
        """The edge's directories: its buffers (its workers' user writes them), the ACME
        webroot (world-readable: it holds only challenge tokens), and an empty sites file
        until the reconciler writes the live domains'."""
        _ensure_dir(self.cfg.path("edge"), 0o755)
        _ensure_dir(self.cfg.path(EDGE_TEMP), 0o700, *_ids(self.cfg.edge.user))
        _ensure_dir(self.cfg.path("run/edge"), 0o755)
        # Traversable (nginx's workers reach the webroot), not listable; keys in it are 0600.
        _ensure_dir(self.cfg.path("acme"), 0o711)
        _ensure_dir(self.cfg.path(ACME_WEBROOT), 0o755)
        if not self.cfg.path(EDGE_SITES).exists():
            write_atomic(self.cfg.path(EDGE_SITES), b"# no live domains yet\n", mode=0o644)

    def _prepare_relays(self, postfix_gid: int) -> None:
        """The relay tables main.cf names (texthash: Postfix will not start without them),
        empty until the reconciler writes them; the password table root:postfix 0640."""
        # The transports to other nodes (peers.py): the same, and empty on a lone node.
        tables = render_relay_files([]) | render_peer_transport([], self.cfg.ports["forward"])
        for rel, data in tables.items():
            if not self.cfg.path(rel).exists():
                secret = rel in RELAY_SECRET_FILES
                write_atomic(self.cfg.path(rel), data, mode=0o640 if secret else 0o644,
                             gid=postfix_gid if secret else -1)
    def _prepare_webmail(self) -> None:
        """Roundcube's private install tree (symlinks into Debian's, our plugin beside its
        stock ones), its database, the session cipher key, the SSO master secret and store."""
        uid, gid = _ids(WEBMAIL_USER)
        dovecot_gid = grp.getgrnam("dovecot").gr_gid
        share = Path(ROUNDCUBE_SHARE)
        app = self.cfg.path(WEBMAIL_APP)
        for rel in ("webmail", WEBMAIL_APP, f"{WEBMAIL_APP}/public_html",
                    f"{WEBMAIL_APP}/public_html/program", f"{WEBMAIL_APP}/plugins",
                    f"{WEBMAIL_APP}/skins", "webmail/config", "run/webmail"):
            _ensure_dir(self.cfg.path(rel), 0o755)
        links = {
            "index.php": share / "index.php", "program": share / "program",
            "SQL": share / "SQL", "vendor": share / "vendor",
            "skins/elastic": share / "skins/elastic",
            "public_html/plugins": Path("../plugins"), "public_html/skins": Path("../skins"),
            "public_html/program/js": Path("../../program/js"),
            "public_html/program/resources": Path("../../program/resources"),
        }
        links |= {f"plugins/{p.name}": p for p in (share / "plugins").iterdir()
                  if p.is_dir() and p.name != "mailhost_sso"}
        for rel, target in links.items():
            _ensure_link(app / rel, target)
        for name, target in (("defaults.inc.php", ROUNDCUBE_DEFAULTS),
                             ("mimetypes.php", ROUNDCUBE_MIMETYPES)):
            _ensure_link(self.cfg.path(f"webmail/config/{name}"), Path(target))
        # Roundcube derives its install path from the directory of the index.php it runs.
        write_atomic(app / "public_html/index.php", _ROUNDCUBE_INDEX, mode=0o644)
        _ensure_dir(self.cfg.path(WEBMAIL_PLUGIN).parent, 0o755)
        write_atomic(self.cfg.path(WEBMAIL_PLUGIN),
                     (Path(__file__).parent / "roundcube/mailhost_sso.php").read_bytes(),
                     mode=0o644)
        assert "mailhost_sso" in PLUGINS  # noqa: S101 (the config names the plugin written here)
        for rel in (WEBMAIL_TEMP, "webmail/db", WEBMAIL_LOG_DIR):
            _ensure_dir(self.cfg.path(rel), 0o750, uid, gid)
        db = self.cfg.path(WEBMAIL_DB)
        if not db.exists():
            conn = sqlite3.connect(db)
            try:
                conn.executescript(Path(ROUNDCUBE_SQL).read_text())
            finally:
                conn.close()
        os.chown(db, uid, gid)
        os.chmod(db, 0o640)
        self._prepare_webmail_secrets(uid, gid, dovecot_gid)
        sso = self.cfg.path(WEBMAIL_SSO_DB)
        _ensure_dir(sso.parent, 0o2770, 0, gid)  # the portal writes, the plugin redeems
        SsoStore(sso).ensure_schema()
        for path in (sso, Path(f"{sso}-wal"), Path(f"{sso}-shm")):
            if path.exists():
                os.chown(path, 0, gid)
                os.chmod(path, 0o660)

    def _prepare_webmail_secrets(self, uid: int, gid: int, dovecot_gid: int) -> None:
        secrets_dir = self.cfg.path(WEBMAIL_MASTER_SECRET).parent
        # Traversable by Dovecot's auth process (user dovecot, reads master-users); each file
        # is readable by its one reader's group only.
        _ensure_dir(secrets_dir, 0o751, 0, gid)
        if not self.cfg.path(WEBMAIL_DES_KEY).exists():
            write_atomic(self.cfg.path(WEBMAIL_DES_KEY), secrets.token_urlsafe(18).encode(),
                         mode=0o640, gid=gid)
        secret_file = self.cfg.path(WEBMAIL_MASTER_SECRET)
        if not secret_file.exists():
            write_atomic(secret_file, secrets.token_urlsafe(32).encode(), mode=0o640, gid=gid)
        secret = secret_file.read_text().strip()
        digest = base64.b64encode(hashlib.sha256(secret.encode()).digest()).decode()
        host = webmail_config(self.cfg).host
        write_atomic(self.cfg.path(WEBMAIL_MASTER_USERS),
                     render_master_users(digest, host).encode(), mode=0o640, gid=dovecot_gid)
    def _prepare_dav(self) -> None:
        """Radicale's tree, root's only: the reconciler keeps one link per mailbox in
        collection-root/ (the collections themselves are in the homes)."""
        _ensure_dir(self.cfg.path("dav"), 0o755)
        _ensure_dir(self.cfg.path(DAV_FOLDER), 0o700)
        _ensure_dir(self.cfg.path(COLLECTION_ROOT), 0o700)

    def _prepare_lookup(self, postfix_gid: int) -> None:
        db = self.cfg.lookup_db
        if not db.exists():
            # Created with its final mode first: SQLite gives -wal/-shm the main file's mode.
            db.touch(mode=0o660)
        for path in (db, Path(f"{db}-wal"), Path(f"{db}-shm")):
            if path.exists():
                os.chown(path, 0, postfix_gid)
                os.chmod(path, 0o660)
        lookup.ensure_schema(db)

    def _prepare_senders(self, postfix_gid: int) -> None:
        """The application senders' store: Postfix reads it (same rules as the lookup store)."""
        db = self.cfg.path(SENDERS_DB)
        _ensure_dir(db.parent, 0o2770, 0, postfix_gid)
        if not db.exists():
            db.touch(mode=0o660)
        senders.ensure_schema(db)
        for path in (db, Path(f"{db}-wal"), Path(f"{db}-shm")):
            if path.exists():
                os.chown(path, 0, postfix_gid)
                os.chmod(path, 0o660)

    def _prepare_bans(self, postfix_gid: int) -> None:
        """The ban store (read by Postfix: same rules as the lookup store) and the secret the
        policy server shares with Dovecot (root only: Dovecot's master reads it as root)."""
        db = self.cfg.bans_db
        _ensure_dir(db.parent, 0o2770, 0, postfix_gid)
        if not db.exists():
            db.touch(mode=0o660)
        BanStore(db, self.cfg.ban_policy).ensure_schema()
        for path in (db, Path(f"{db}-wal"), Path(f"{db}-shm")):
            if path.exists():
                os.chown(path, 0, postfix_gid)
                os.chmod(path, 0o660)
        header = self.cfg.banpolicy_header_file
        _ensure_dir(header.parent, 0o755)
        if not header.exists():
            # No newline: Dovecot sends the file's bytes as the header line.
            write_atomic(header, f"X-API-Key:{secrets.token_urlsafe(32)}".encode(), mode=0o600)

    # --- configuration ------------------------------------------------------------------------

    def write_config(self) -> list[str]:
        """Write every static file that differs, validated first; return the changed paths."""
        files = render_static_files(self.cfg)
        if self.cfg.doveadm_password:  # dovecot.conf reads it (a secret: not a static file)
            write_atomic(self.cfg.path(DOVEADM_PASSWORD_FILE), self.cfg.doveadm_password.encode(),
                         mode=0o600)
        ensure_certificate(  # dovecot.conf reads the certificate while it is validated
            self.cfg.path("tls/cert.pem"), self.cfg.path("tls/key.pem"), self.cfg.hostname
        )
        if any(rel.startswith("postfix/") and self._differs(rel, data)
               for rel, data in files.items()):
            self._validate_postfix()  # ~1 s of postconf: only for a Postfix file that changed
        validators: dict[str, Callable[[Path], None]] = {
            "dovecot/dovecot.conf": self._validate_dovecot,
            "opendkim/opendkim.conf": self._validate_opendkim,
            "unbound/unbound.conf": self._validate_unbound,
            EDGE_CONF: self._validate_edge,
        }
        changed = [
            rel
            for rel, data in files.items()
            if write_atomic(self.cfg.path(rel), data, mode=0o755 if rel in PIPE_PROGRAMS else 0o644,
                            validate=validators.get(rel))
        ]
        if any(rel.startswith("rspamd/") for rel in changed):
            self._validate_rspamd()
        if any(rel.startswith(("sieve/global/", "dovecot/")) for rel in changed):
            self._compile_global_sieve()
        if any(rel.startswith("postfix/") for rel in changed):
            for rel in changed:
                if rel.startswith("postfix/"):
                    _cool_down(self.cfg.path(rel))
            self._postfix_check()
        # Mark them managed, so the reconciler can tell a later hand edit from our own write.
        ManagedFiles(self.cfg.state_dir).record({rel: FileSpec(d) for rel, d in files.items()})
        return changed

    def _differs(self, rel: str, data: bytes) -> bool:
        try:
            return self.cfg.path(rel).read_bytes() != data
        except FileNotFoundError:
            return True

    def _validate_postfix(self) -> None:
        """postconf parses main.cf, master.cf and the sqlite maps together. It opens the maps by
        absolute path, so the same config is rendered for a scratch state dir and checked there:
        nothing live is touched until the whole Postfix set parses without a warning."""
        with tempfile.TemporaryDirectory(prefix="mhpc", dir="/tmp") as scratch:
            trial = render_static_files(dataclasses.replace(self.cfg, state_dir=Path(scratch)))
            for rel, data in trial.items():
                if rel.startswith("postfix/"):
                    path = Path(scratch, rel)
                    path.parent.mkdir(exist_ok=True)
                    path.write_bytes(data)
                    _cool_down(path)
            for flag in ("-n", "-M"):
                out = _run(["postconf", "-c", f"{scratch}/postfix", flag], what="postconf")
                if "warning:" in out or "fatal:" in out:
                    raise StackError(f"postconf {flag} rejects the rendered Postfix config:\n{out}")

    def _validate_dovecot(self, candidate: Path) -> None:
        out = _run(["doveconf", "-c", str(candidate), "-n"], what="doveconf")
        if "Warning:" in _stderr_lines(out) or "Error" in _stderr_lines(out):
            raise StackError(f"doveconf rejects the rendered dovecot.conf:\n{out}")

    def _validate_edge(self, candidate: Path) -> None:
        _run(["nginx", "-t", "-q", "-e", str(self.log_file("edge")), "-c", str(candidate)],
             what="nginx -t", timeout=SLOW_TOOL_TIMEOUT)

    def _validate_unbound(self, candidate: Path) -> None:
        _run(["unbound-checkconf", str(candidate)], what="unbound-checkconf")

    def rspamd_vars(self) -> list[str]:
        """Rspamd's private tree: the stock rules, our overrides, our state and sockets."""
        cfg = self.cfg
        return [
            f"--var=CONFDIR={RSPAMD_CONFDIR}", f"--var=LOCAL_CONFDIR={cfg.path('rspamd')}",
            f"--var=DBDIR={cfg.path('rspamd/db')}", f"--var=RUNDIR={cfg.path('run/rspamd')}",
            f"--var=LOGDIR={cfg.path('log')}",
        ]

    def _validate_rspamd(self) -> None:
        conf = str(self.cfg.path("rspamd/rspamd.conf"))
        out = _run(["rspamadm", *self.rspamd_vars(), "configtest", "-c", conf],
                   what="rspamadm configtest")
        if "syntax OK" not in out:
            raise StackError(f"rspamadm configtest rejects the rendered Rspamd config:\n{out}")

    def _compile_global_sieve(self) -> None:
        """Precompile the global scripts: Dovecot runs them as the mail user, who may not
        write the .svbin beside them (it would then compile on every delivery)."""
        for script in sorted(self.cfg.path("sieve/global").glob("*.sieve")):
            _run(["sievec", "-c", str(self.dovecot_conf), str(script)], what="sievec")

    def _validate_opendkim(self, candidate: Path) -> None:
        _run(["opendkim", "-n", "-x", str(candidate)], what="opendkim -n")

    def _postfix_check(self) -> None:
        # Also creates the queue subdirectories with their owners on first use.
        _run(["postfix", "-c", str(self.postfix_dir), "check"], what="postfix check")

    # --- start / stop -------------------------------------------------------------------------

    def start(self) -> None:
        """Prepare, write config, start what is not running (reload what is, if its config
        changed), and wait until every listener answers. Idempotent."""
        self.prepare()
        changed = self.write_config()
        if not any(rel.startswith("postfix/") for rel in changed):
            self._postfix_check()  # write_config ran it otherwise; it repairs the queue dirs
        for daemon in self.daemons:
            config = PYTHON_DAEMONS[daemon].config if daemon in PYTHON_DAEMONS else None
            touched = any(rel.startswith(f"{daemon}/") or rel == config for rel in changed)
            if self.pid(daemon) is None:
                logger.info("starting %s from %s", daemon, self.cfg.state_dir)
                if daemon in PYTHON_DAEMONS:
                    self._start_python(daemon)
                else:
                    getattr(self, f"_start_{daemon}")()
            elif touched:
                logger.info("reloading %s: its configuration changed", daemon)
                self.reload(daemon)
        self.wait_ready()

    def _start_rspamd(self) -> None:
        self.pid_file("rspamd").unlink(missing_ok=True)
        for stale in (RSPAMD_MILTER_SOCKET, RSPAMD_CONTROLLER_SOCKET):
            self.cfg.path(stale).unlink(missing_ok=True)
        conf = str(self.cfg.path("rspamd/rspamd.conf"))
        _run(["rspamd", "-c", conf, *self.rspamd_vars(), "-u", RSPAMD_USER, "-g", RSPAMD_USER],
             what="rspamd start", timeout=SLOW_TOOL_TIMEOUT)

    def _start_unbound(self) -> None:
        self.pid_file("unbound").unlink(missing_ok=True)
        _run(["unbound", "-c", str(self.cfg.path("unbound/unbound.conf"))], what="unbound start")

    def _start_opendkim(self) -> None:
        for stale in (self.opendkim_socket, self.pid_file("opendkim")):
            stale.unlink(missing_ok=True)
        _run(["opendkim", "-x", str(self.opendkim_conf)], what="opendkim start")

    def _start_postsrsd(self) -> None:
        """postsrsd 1.x (Debian 12): flags only, no config file. It reads the secrets file once
        at start (first line signs, every line verifies): a new file means a restart."""
        self.pid_file("postsrsd").unlink(missing_ok=True)
        _run(["postsrsd", "-s", str(self.cfg.path(SRS_SECRETS)), "-d", self.cfg.srs,
              "-l", "127.0.0.1", "-4", "-f", str(self.cfg.ports["srs"]),
              "-r", str(self.cfg.ports["srs_reverse"]), "-p", str(self.pid_file("postsrsd")),
              "-u", POSTSRSD_USER, "-D"], what="postsrsd start")

    def reload_postsrsd(self) -> None:
        """A restart (postsrsd keeps no state; Postfix retries a table lookup that failed).
        postsrsd serves each connection from a child of its own, and Postfix's cleanup keeps
        its table connections open: the children go too, or they would go on signing with the
        old secrets."""
        pid = self.pid("postsrsd")
        if pid is not None:
            processes = _descendants({pid})
            for child, _started in processes:
                _signal(child, signal.SIGTERM)
            _wait_exit({child for child, _started in processes}, timeout=5.0)
            _kill_survivors(processes)
        self._start_postsrsd()
        deadline = time.monotonic() + 10.0
        while not (_tcp_accepts(self.address("srs")) and _tcp_accepts(self.address("srs_reverse"))):
            if time.monotonic() > deadline:
                raise StackError(f"postsrsd is not answering after a restart.\n{self.log_tails()}")
            time.sleep(0.02)

    def _start_dovecot(self) -> None:
        _run(["dovecot", "-c", str(self.dovecot_conf)], what="dovecot start")

    def _start_postfix(self) -> None:
        _run(["postfix", "-c", str(self.postfix_dir), "start"], what="postfix start")

    def _start_edge(self) -> None:
        self.pid_file("edge").unlink(missing_ok=True)
        _run(["nginx", "-e", str(self.log_file("edge")), "-c", str(self.cfg.path(EDGE_CONF))],
             what="nginx start", timeout=SLOW_TOOL_TIMEOUT)

    def _start_webmail(self) -> None:
        self.pid_file("webmail").unlink(missing_ok=True)
        self.cfg.path(WEBMAIL_FPM_SOCKET).unlink(missing_ok=True)
        _run([PHP_FPM, "-y", str(self.cfg.path(WEBMAIL_FPM_CONF))], what="php-fpm start")

    def _start_python(self, daemon: str) -> None:
        """Start a Python daemon in a session of its own; it outlives `manage.py stack start`."""
        spec = PYTHON_DAEMONS[daemon]
        self.pid_file(daemon).unlink(missing_ok=True)
        env = _DAEMON_ENV | {"PYTHONPATH": str(_PROJECT_ROOT), "PYTHONDONTWRITEBYTECODE": "1"}
        argv = [sys.executable, "-m", spec.module, "--config", str(self.cfg.path(spec.config))]
        # `setsid -f` forks it off and returns at once: the daemon is never our child, so it is
        # never left a zombie of a long-lived caller (a test session, a worker).
        with open(self.log_file(daemon), "ab") as log:
            started = subprocess.run(
                ["setsid", "-f", *argv], stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, env=env, cwd=self.cfg.state_dir, timeout=30, check=False,
            )
        if started.returncode != 0:
            raise StackError(f"{daemon} did not start (setsid exit {started.returncode})")

    def _python_command(self, daemon: str) -> str:
        spec = PYTHON_DAEMONS[daemon]
        return f"-m {spec.module} --config {self.cfg.path(spec.config)}"

    def stop(self) -> None:
        """Stop all three and wait until no process of the stack is left. Idempotent."""
        leftovers = self.processes()
        pids = {daemon: self.pid(daemon) for daemon in DAEMONS}  # webmail's too, if left on
        # OpenDKIM first: its grace period runs while the others stop.
        for daemon in ("opendkim", "rspamd", "unbound", "postsrsd", *PYTHON_DAEMONS, "dovecot",
                       "webmail",
                       "edge"):
            if pids[daemon]:
                logger.info("stopping %s (pid %s)", daemon, pids[daemon])
                _signal(pids[daemon], signal.SIGTERM)
        term_sent = time.monotonic()
        if pids["postfix"]:
            logger.info("stopping postfix (pid %s)", pids["postfix"])
            try:
                _run(["postfix", "-c", str(self.postfix_dir), "stop"], what="postfix stop")
            except StackError as exc:  # a broken config must not keep the stack from stopping
                logger.warning("%s; sending SIGTERM to the master instead", exc)
                _signal(pids["postfix"], signal.SIGTERM)
        _wait_exit({p for d, p in pids.items() if p and d != "opendkim"}, timeout=10.0)
        remaining = OPENDKIM_TERM_GRACE - (time.monotonic() - term_sent)
        _wait_exit({pids["opendkim"]} - {None}, timeout=max(remaining, 0))
        _kill_survivors(leftovers | self._orphans())
        self.opendkim_socket.unlink(missing_ok=True)
        self.pid_file("opendkim").unlink(missing_ok=True)

    # --- state --------------------------------------------------------------------------------

    def pid(self, daemon: str) -> int | None:
        """The master pid of a running daemon of this stack, else None (stale pid files and
        reused pids are recognised by the executable)."""
        try:
            pid = int(self.pid_file(daemon).read_text().strip())
            if daemon in PYTHON_DAEMONS:  # the interpreter runs many things: match the command
                title = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
                return pid if self._python_command(daemon) in title else None
            return pid if _runs(pid, _EXECUTABLES[daemon]) else None
        except (FileNotFoundError, ValueError, ProcessLookupError, PermissionError):
            return None

    def status(self) -> dict[str, int | None]:
        return {daemon: self.pid(daemon) for daemon in self.daemons}

    def is_running(self) -> bool:
        return all(self.status().values())

    def processes(self) -> set[tuple[int, int]]:
        """(pid, start time) of every process of this stack: the masters and their descendants."""
        masters = {pid for pid in self.status().values() if pid}
        return _descendants(masters)

    def _orphans(self) -> set[tuple[int, int]]:
        """Processes of this stack that lost their master: found by their exact titles
        (Dovecot's carry the state dir, see instance_name), never by a loose match."""
        state = str(self.cfg.state_dir)
        prefixes = (
            f"dovecot-{state}/",
            f"/usr/sbin/dovecot -c {self.dovecot_conf}",
            f"opendkim -x {self.opendkim_conf}",
            f"/usr/sbin/opendkim -x {self.opendkim_conf}",
            f"nginx: master process nginx -e {self.log_file('edge')} -c {self.cfg.path(EDGE_CONF)}",
            f"php-fpm: master process ({self.cfg.path(WEBMAIL_FPM_CONF)})",
            f"postsrsd -s {self.cfg.path(SRS_SECRETS)} ",  # and the children serving Postfix
        )
        found = set()
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                title = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            except (FileNotFoundError, ProcessLookupError, UnicodeDecodeError):
                continue
            python = any(self._python_command(d) in title for d in PYTHON_DAEMONS)
            if (title.startswith(prefixes) or python) and (info := _stat(int(entry))):
                found.add((int(entry), info[1]))
        return found

    # --- usage --------------------------------------------------------------------------------

    def quota_usage(self) -> dict[str, int]:
        """Bytes stored per mailbox, as Dovecot's quota counts them (every user it iterates)."""
        output = _run(
            ["doveadm", "-c", str(self.dovecot_conf), "-f", "tab", "quota", "get", "-A"],
            what="doveadm quota get",
        )
        usage = {}
        for line in output.splitlines()[1:]:  # header: Username, Quota name, Type, Value, …
            fields = line.split("\t")
            if len(fields) >= 4 and fields[2] == "STORAGE" and fields[3].isdigit():
                usage[fields[0]] = int(fields[3]) * 1024  # Dovecot reports KiB
        return usage

    # --- reloads ------------------------------------------------------------------------------

    def reload(self, daemon: str) -> None:
        if daemon in PYTHON_DAEMONS:
            self.restart_python(daemon)
            return
        getattr(self, f"reload_{daemon}")()

    def restart_python(self, daemon: str) -> None:
        """A Python daemon re-reads its config by restarting (it keeps no state of its own)."""
        pid = self.pid(daemon)
        if pid is not None:
            _signal(pid, signal.SIGTERM)
            _wait_exit({pid}, timeout=10.0)
        self._start_python(daemon)

    def reload_postfix(self) -> None:
        _run(["postfix", "-c", str(self.postfix_dir), "reload"], what="postfix reload")

    def reload_webmail(self) -> None:
        """SIGUSR2: php-fpm re-reads its pool; Roundcube reads config.inc.php per request."""
        pid = self.pid("webmail")
        if pid is None:
            raise StackError("php-fpm (webmail) is not running")
        os.kill(pid, signal.SIGUSR2)

    def reload_dovecot(self) -> None:
        _run(["doveadm", "-c", str(self.dovecot_conf), "reload"], what="doveadm reload")

    def reload_rspamd(self) -> None:
        """SIGHUP: Rspamd re-reads its config and restarts its workers (~1 s, cache warm).
        Per-domain settings are a map it re-reads by itself: no reload for those."""
        pid = self.pid("rspamd")
        if pid is None:
            raise StackError("Rspamd is not running")
        before = self._children(pid)
        os.kill(pid, signal.SIGHUP)
        # Done when the old workers are gone and new ones run: until then a message may still
        # be scanned on the old config (the forwarding tests' ARC key, for one).
        deadline = time.monotonic() + 30.0
        while time.monotonic() < deadline:
            now = self._children(pid)
            if now and not now & before:
                return
            time.sleep(0.02)
        logger.warning("Rspamd's workers did not all restart within 30 s of SIGHUP")

    @staticmethod
    def _children(pid: int) -> set[int]:
        try:
            return {int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()}
        except (FileNotFoundError, ProcessLookupError):
            return set()

    def reload_unbound(self) -> None:
        """SIGHUP: unbound re-reads its config, hosted.conf and the fixture zones."""
        pid = self.pid("unbound")
        if pid is None:
            raise StackError("unbound is not running")
        os.kill(pid, signal.SIGHUP)

    def reload_edge(self) -> None:
        """Check the whole config (with the sites the reconciler wrote), then SIGHUP: nginx
        starts new workers on it and lets the old ones finish their requests. A config it
        refuses leaves the running edge as it was (and raises)."""
        pid = self.pid("edge")
        if pid is None:
            raise StackError("the edge (nginx) is not running")
        self._validate_edge(self.cfg.path(EDGE_CONF))
        before = self.edge_workers()
        os.kill(pid, signal.SIGHUP)
        # Done when the master has started workers on the new config (the old ones finish
        # their requests and leave on their own).
        deadline = time.monotonic() + 10.0
        while not self.edge_workers() - before and time.monotonic() < deadline:
            time.sleep(0.01)

    def edge_workers(self) -> set[int]:
        """The pids of the edge's worker processes (children of its master)."""
        pid = self.pid("edge")
        try:
            return {int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()}
        except (FileNotFoundError, ProcessLookupError, TypeError):
            return set()

    def stop_daemon(self, daemon: str) -> None:
        """Stop one daemon of the stack (the resolver, for the circuit breaker's tests and an
        operator's maintenance); `start()` brings it back."""
        pid = self.pid(daemon)
        if pid is not None:
            _signal(pid, signal.SIGTERM)
            _wait_exit({pid}, timeout=10.0)

    def rspamd_stat(self) -> str:
        """`rspamc stat` against the node's controller: scanned, learned, actions."""
        return _run(["rspamc", "-h", str(self.cfg.path(RSPAMD_CONTROLLER_SOCKET)), "stat"],
                    what="rspamc stat")

    def reload_opendkim(self) -> None:
        """SIGUSR1: OpenDKIM re-reads its config, KeyTable and SigningTable."""
        pid = self.pid("opendkim")
        if pid is None:
            raise StackError("OpenDKIM is not running")
        os.kill(pid, signal.SIGUSR1)

    # --- DKIM tables ---------------------------------------------------------------------------

    def dkim_problems(self) -> list[str]:
        """What OpenDKIM would trip over in KeyTable/SigningTable/keys, in words.

        OpenDKIM logs only to syslog (often absent here), so a bad key otherwise shows only as
        451 4.7.1 on submission. The reconciler can call this after writing keys; `manage.py
        stack status` prints it.
        """
        problems: list[str] = []
        keys = _table(self.cfg.opendkim_key_table)
        for name, value in keys.items():
            try:
                _domain, _selector, path = value.split(":", 2)
            except ValueError:
                problems.append(f"KeyTable {name}: expected domain:selector:/path, got {value!r}")
                continue
            problems += [f"KeyTable {name}: {p}" for p in self._key_file_problems(Path(path))]
        for pattern, name in _table(self.cfg.opendkim_signing_table).items():
            if name not in keys:
                problems.append(f"SigningTable {pattern}: key {name!r} is not in the KeyTable")
        return problems

    def _key_file_problems(self, path: Path) -> list[str]:
        try:
            info = path.stat()
            data = path.read_bytes()
        except OSError as exc:
            return [f"{path}: {exc.strerror}"]
        problems = []
        if info.st_uid != pwd.getpwnam(OPENDKIM_USER).pw_uid:
            problems.append(f"{path} is not owned by {OPENDKIM_USER}")
        if self.cfg.dkim_require_safe_keys and info.st_mode & 0o077:
            problems.append(f"{path} is readable by others (mode {info.st_mode & 0o777:o})")
        try:
            serialization.load_pem_private_key(data, password=None)
        except (ValueError, TypeError):
            problems.append(f"{path} is not an unencrypted PEM private key")
        return problems

    # --- readiness ----------------------------------------------------------------------------

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        checks: list[tuple[str, Callable[[], bool]]] = [
            ("unbound", lambda: _dns_answers(self.address("resolver"))),
            ("OpenDKIM milter socket", lambda: _unix_accepts(self.opendkim_socket)),
            ("Rspamd milter socket",
             lambda: _unix_accepts(self.cfg.path(RSPAMD_MILTER_SOCKET))),
            ("Rspamd controller", lambda: _unix_accepts(self.cfg.path(RSPAMD_CONTROLLER_SOCKET))),
            ("postsrsd", lambda: _tcp_accepts(self.address("srs"))
             and _tcp_accepts(self.address("srs_reverse"))),
            *((spec.what, lambda spec=spec: spec.ready(self)) for spec in PYTHON_DAEMONS.values()),
            ("Dovecot LMTP", lambda: _unix_greets(self.lmtp_socket, b"220")),
            ("Dovecot IMAP", lambda: _tcp_greets(self.address("imap"), b"* OK")),
            ("Dovecot ManageSieve",
             lambda: _tcp_greets(self.address("managesieve"), b'"IMPLEMENTATION"')),
            ("Postfix SMTP", lambda: _tcp_greets(self.address("smtp"), b"220")),
            ("Postfix submission", lambda: _tcp_greets(self.address("submission"), b"220")),
            ("Postfix internal", lambda: _tcp_greets(self.address("internal"), b"220")),
            ("Postfix forward", lambda: _tcp_greets(self.address("forward"), b"220")),
            ("Postfix submissions",
             lambda: _tcp_greets(self.address("submissions"), b"220", tls=True)),
            ("Dovecot IMAPS", lambda: _tcp_greets(self.address("imaps"), b"* OK", tls=True)),
            ("Edge HTTPS", lambda: _tls_handshakes(self.address("https"), self.cfg.hostname)),
        ]
        if self.cfg.edge.webmail:
            checks.append(("Webmail php-fpm",
                           lambda: _unix_accepts(self.cfg.path(WEBMAIL_FPM_SOCKET))))
        deadline = time.monotonic() + timeout
        for name, check in checks:
            while not check():
                if time.monotonic() > deadline:
                    raise StackError(f"{name} is not answering after {timeout:.0f} s.\n"
                                     f"{self.log_tails()}")
                time.sleep(0.02)

    def log_tails(self, lines: int = 20) -> str:
        parts = []
        for daemon in ("postfix", "dovecot", "rspamd", "unbound", "edge", *PYTHON_DAEMONS):
            try:
                tail = self.log_file(daemon).read_text(errors="replace").splitlines()[-lines:]
            except FileNotFoundError:
                tail = ["(no log yet)"]
            parts.append(f"--- {self.log_file(daemon)}\n" + "\n".join(tail))
        return "\n".join(parts)


# --- helpers ---------------------------------------------------------------------------------


def _ids(user: str) -> tuple[int, int]:
    entry = pwd.getpwnam(user)
    return entry.pw_uid, entry.pw_gid


def _ensure_link(link: Path, target: Path) -> None:
    """A symlink `link` → `target`, replaced if it points elsewhere."""
    if link.is_symlink() and Path(os.readlink(link)) == target:
        return
    if link.is_symlink() or link.exists():
        link.unlink()
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(target)


def _ensure_dir(path: Path, mode: int, uid: int = 0, gid: int = 0) -> None:
    path.mkdir(parents=True, exist_ok=True)
    os.chown(path, uid, gid)
    os.chmod(path, mode)  # after chown: chown clears the setgid bit


# Tools whose time grows with the node or is long when cold: nginx reads every live domain's
# sites (and their certificates) to check or start, Rspamd compiles its regex cache on a first
# start. At 10,000 domains, on a busy 2-core machine, both took over 60 s (the benchmark's full
# reconcile and stack start failed on it).
SLOW_TOOL_TIMEOUT = 600


def _run(argv: list[str], *, what: str, timeout: int = 60) -> str:
    """Run a tool with a clean environment; return its output, raise StackError on failure.

    Output goes to a file, not a pipe: a daemon that forks keeps inherited pipes open, and
    reading a pipe to EOF would then wait for the daemon to exit.
    """
    with tempfile.TemporaryFile() as out:
        try:
            proc = subprocess.run(
                argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                env=_DAEMON_ENV, timeout=timeout, start_new_session=True, check=False,
            )
        except FileNotFoundError as exc:
            raise StackError(f"{what}: {argv[0]} is not installed ({exc})") from None
        except subprocess.TimeoutExpired:
            command = " ".join(argv)
            raise StackError(f"{what} did not finish within {timeout} s: {command}") from None
        out.seek(0)
        text = out.read().decode(errors="replace")
    if proc.returncode != 0:
        raise StackError(f"{what} failed (exit {proc.returncode}): {' '.join(argv)}\n{text}")
    return text


def _table(path: Path) -> dict[str, str]:
    """An OpenDKIM flat table: 'key value' per line, '#' comments."""
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return {}
    rows = (line.split(None, 1) for line in lines if line.strip() and not line.startswith("#"))
    return {row[0]: row[1].strip() if len(row) > 1 else "" for row in rows}


def _cool_down(path: Path) -> None:
    """Date a complete Postfix config file 3 s back. Every Postfix program re-reads main.cf
    until its mtime is over a second old ("pausing to let it cool down", up to 2 s per
    program) to avoid reading a half-written file; ours are renamed into place whole."""
    past = time.time() - 3
    os.utime(path, (past, past))


def _stderr_lines(text: str) -> str:
    """doveconf prints config on stdout and problems prefixed 'doveconf: '."""
    return "\n".join(line for line in text.splitlines() if line.startswith("doveconf:"))


def _runs(pid: int, executable: str) -> bool:
    """Whether the process runs this program. /proc/<pid>/exe takes ptrace rights over the
    process, which a daemon that dropped to its own user (OpenDKIM, unbound, postsrsd) denies a
    root without CAP_SYS_PTRACE: a container's root under Docker's default capabilities. There
    the kernel's name for the process (comm, readable by anyone) stands in."""
    try:
        return os.readlink(f"/proc/{pid}/exe") == executable
    except PermissionError:
        comm = Path(f"/proc/{pid}/comm").read_text().rstrip("\n")
        return comm == Path(executable).name[:15]  # the kernel keeps 15 characters


def _stat(pid: int) -> tuple[int, int] | None:
    """(parent pid, start time) from /proc/<pid>/stat; None if the process is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = raw[raw.rindex(")") + 2 :].split()
    return int(fields[1]), int(fields[19])


def _descendants(roots: set[int]) -> set[tuple[int, int]]:
    children: dict[int, list[tuple[int, int]]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (info := _stat(int(entry))):
            children.setdefault(info[0], []).append((int(entry), info[1]))
    found = {(pid, info[1]) for pid in roots if (info := _stat(pid))}
    queue = list(roots)
    while queue:
        for child in children.get(queue.pop(), []):
            if child not in found:
                found.add(child)
                queue.append(child[0])
    return found


def _alive(pid: int, started: int | None = None) -> bool:
    info = _stat(pid)
    if info is None or (started is not None and info[1] != started):
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"  # a zombie has exited; only its parent's wait() is missing


def _wait_exit(pids: set[int], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.02)


def _kill_survivors(processes: set[tuple[int, int]]) -> None:
    """SIGKILL whatever of the stack outlived its master (same pid *and* start time only)."""
    for pid, started in processes:
        if _alive(pid, started):
            _signal(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5.0
    while any(_alive(pid, st) for pid, st in processes) and time.monotonic() < deadline:
        time.sleep(0.02)


def _signal(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # it exited meanwhile: that is the goal
        os.kill(pid, signum)


def _unix_accepts(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(2)
        try:
            sock.connect(str(path))
        except OSError:
            return False
    return True


def _tcp_accepts(address: tuple[str, int]) -> bool:
    try:
        with socket.create_connection(address, timeout=2):
            return True
    except OSError:
        return False


def _dns_answers(address: tuple[str, int]) -> bool:
    return dns_answers(address, "localhost.", timeout=1.0)


def _unix_greets(path: Path, greeting: bytes) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(2)
        try:
            sock.connect(str(path))
            return sock.recv(512).startswith(greeting)
        except OSError:
            return False


def _http_ok(address: tuple[str, int], path: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://{address[0]}:{address[1]}{path}", timeout=2) as r:  # noqa: S310 (loopback)
            return r.status == 200
    except OSError:
        return False


def _http_answers(address: tuple[str, int]) -> bool:
    """Whether an HTTP server answers there at all (any status)."""
    try:
        with socket.create_connection(address, timeout=2) as sock:
            sock.sendall(b"OPTIONS / HTTP/1.0\r\n\r\n")
            return sock.recv(16).startswith(b"HTTP/")
    except OSError:
        return False


def _tls_handshakes(address: tuple[str, int], server_name: str) -> bool:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # readiness only: whichever certificate it has
    try:
        with socket.create_connection(address, timeout=2) as raw, \
                context.wrap_socket(raw, server_hostname=server_name):
            return True
    except OSError:
        return False


def _tcp_greets(address: tuple[str, int], greeting: bytes, *, tls: bool = False) -> bool:
    try:
        with socket.create_connection(address, timeout=2) as raw:
            if not tls:
                return raw.recv(512).startswith(greeting)
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE  # our own self-signed certificate on loopback
            with context.wrap_socket(raw) as sock:
                return sock.recv(512).startswith(greeting)
    except OSError:
        return False

