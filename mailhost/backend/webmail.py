"""Webmail: Debian's Roundcube on a private php-fpm pool, served by the edge at /webmail/.

Everything runs from the node state directory (nothing under /etc is edited):

  webmail/app/        Roundcube's install path: symlinks into Debian's tree (/usr/share/roundcube),
                      a copied public_html/index.php (Roundcube finds its install path from it),
                      and plugins/ holding Debian's plugins plus ours (mailhost_sso)
  webmail/config/     ROUNDCUBE_CONFIG_DIR: config.inc.php (rendered here), Debian's defaults
  webmail/db/         Roundcube's own SQLite database (preferences, contacts, its sessions)
  webmail/secrets/    des_key (Roundcube's session cipher) and the SSO master login's secret:
                      master.pw (root:www-data 0640, the plugin reads it) and master-users
                      (root:dovecot 0640, Dovecot's passwd-file of that one login)
  webmail/sso/        sso.sqlite: one-time tokens and the portal sessions they belong to
  run/webmail/        php-fpm's socket and pid

Single sign-on (docs/webmail.md): the portal writes a one-time token (only its SHA-256 is
stored) bound to one mailbox and one portal session, valid for TOKEN_SECONDS. The mailhost_sso
plugin redeems it once (deleting it in the same transaction), then logs the holder in to
Dovecot and submission as that mailbox through a master login (SASL PLAIN with authzid =
the mailbox, authcid = MASTER_LOGIN): Dovecot still looks the mailbox up (`pass = yes`), so
a suspended mailbox is refused. On every later request the plugin checks that the portal
session is still live; the portal's sign-out deletes it, which ends the webmail session.

Renderers here are pure (no clock, no disk); `SsoStore` is the portal's and tests' side of
the token store.
"""

import hashlib
import secrets
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

WEBMAIL_USER = "www-data"  # php-fpm's pool user (Debian's web user, as the edge's workers)
ROUNDCUBE_SHARE = "/usr/share/roundcube"
ROUNDCUBE_SQL = f"{ROUNDCUBE_SHARE}/SQL/sqlite.initial.sql"
ROUNDCUBE_DEFAULTS = "/etc/roundcube/defaults.inc.php"  # read, never edited
ROUNDCUBE_MIMETYPES = "/etc/roundcube/mimetypes.php"
PHP_FPM = "/usr/sbin/php-fpm8.2"

WEBMAIL_APP = "webmail/app"
WEBMAIL_PUBLIC = "webmail/app/public_html"
WEBMAIL_CONFIG_DIR = "webmail/config"
WEBMAIL_CONFIG = "webmail/config/config.inc.php"
WEBMAIL_PLUGIN = "webmail/app/plugins/mailhost_sso/mailhost_sso.php"
WEBMAIL_FPM_CONF = "webmail/php-fpm.conf"
WEBMAIL_DB = "webmail/db/roundcube.sqlite"
WEBMAIL_TEMP = "webmail/temp"
WEBMAIL_LOG_DIR = "log/webmail"
WEBMAIL_SECRETS = "webmail/secrets"
WEBMAIL_DES_KEY = "webmail/secrets/des_key"
WEBMAIL_MASTER_SECRET = "webmail/secrets/master.pw"
WEBMAIL_MASTER_USERS = "webmail/secrets/master-users"
WEBMAIL_SSO_DB = "webmail/sso/sso.sqlite"
WEBMAIL_FPM_SOCKET = "run/webmail/php-fpm.sock"
WEBMAIL_FPM_PID = "run/webmail/php-fpm.pid"

MASTER_LOGIN = "webmail-sso"  # Dovecot's master login for SSO sessions (loopback only)
PASSWORD_URL = "/mailbox/password/"  # the portal's page, on the same host as /webmail/
TOKEN_SECONDS = 60  # a token is redeemed by the browser's next request: a minute is plenty
# Roundcube's stock plugins the project turns on, besides its own.
PLUGINS = ("mailhost_sso", "managesieve")
HEADER = "Managed by Mailhost (mailhost/backend/webmail.py); local edits are overwritten."

SSO_SCHEMA = """
CREATE TABLE IF NOT EXISTS tokens (
    token_hash TEXT NOT NULL PRIMARY KEY, address TEXT NOT NULL, session TEXT NOT NULL,
    organisation TEXT NOT NULL, expires INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS sessions (
    session TEXT NOT NULL, address TEXT NOT NULL, expires INTEGER NOT NULL,
    PRIMARY KEY (session, address));
"""


@dataclass(frozen=True)
class WebmailConfig:
    """What Roundcube's config depends on: the state dir, the node's name and its mail ports."""

    state_dir: str
    hostname: str
    host: str  # where Roundcube reaches Dovecot and Postfix (the node's own address)
    imap_port: int
    submission_port: int
    managesieve_port: int
    session_minutes: int = 30


def _php(value: str) -> str:
    """A PHP single-quoted string literal (only \\ and ' need escaping there)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def render_roundcube_config(wm: WebmailConfig) -> str:
    s = wm.state_dir
    host = f"[{wm.host}]" if ":" in wm.host else wm.host
    # Loopback to the node's own Postfix: its certificate names the public host name (or is
    # the node's self-signed one), so the peer is not verified on this hop.
    loopback_tls = "['ssl' => ['verify_peer' => false, 'verify_peer_name' => false]]"
    settings = [
        ("db_dsnw", _php(f"sqlite:///{s}/{WEBMAIL_DB}?mode=0640")),
        ("imap_host", _php(f"{host}:{wm.imap_port}")),
        ("smtp_host", _php(f"tls://{host}:{wm.submission_port}")),
        ("smtp_user", _php("%u")),
        ("smtp_pass", _php("%p")),
        ("smtp_conn_options", loopback_tls),
        ("managesieve_host", _php(f"{host}:{wm.managesieve_port}")),
        ("managesieve_usetls", "false"),
        # Forwarding and the auto-reply are the portal's (rendered before/after the user's own
        # scripts); the user's own filters are theirs, stored by Dovecot under their home.
        ("managesieve_vacation", "0"),
        ("managesieve_forward", "0"),
        ("des_key", f"trim(file_get_contents({_php(f'{s}/{WEBMAIL_DES_KEY}')}))"),
        ("temp_dir", _php(f"{s}/{WEBMAIL_TEMP}/")),
        ("log_dir", _php(f"{s}/{WEBMAIL_LOG_DIR}/")),
        ("plugins", "[" + ", ".join(_php(p) for p in PLUGINS) + "]"),
        ("skin", _php("elastic")),
        ("product_name", _php("Webmail")),
        ("support_url", _php("")),
        ("enable_installer", "false"),
        # The session cookie is sent to /webmail/ only, never to the portal, over HTTPS only.
        ("session_path", _php("/webmail/")),
        ("use_https", "true"),
        ("session_lifetime", str(wm.session_minutes)),
        ("login_autocomplete", "0"),
        ("login_lc", "2"),
        # Failed logins are the node's ban policy's business (Dovecot sees the browser's
        # address): Roundcube's own per-account lock would let anyone lock a holder out.
        ("login_rate_limit", "0"),
        ("x_frame_options", _php("sameorigin")),
        ("mailhost_sso_store", _php(f"{s}/{WEBMAIL_SSO_DB}")),
        ("mailhost_sso_secret", _php(f"{s}/{WEBMAIL_MASTER_SECRET}")),
        ("mailhost_sso_master", _php(MASTER_LOGIN)),
        # Settings > Password links here: the portal changes passwords (same rules, same audit).
        ("mailhost_password_url", _php(PASSWORD_URL)),
    ]
    lines = ["<?php", f"# {HEADER}", "$config = [];"]
    lines += [f"$config[{_php(name)}] = {value};" for name, value in settings]
    return "\n".join(lines) + "\n"


def render_php_fpm_conf(wm: WebmailConfig) -> str:
    s = wm.state_dir
    return "\n".join([
        f"; {HEADER}",
        "[global]",
        f"pid = {s}/{WEBMAIL_FPM_PID}",
        f"error_log = {s}/log/webmail-fpm.log",
        "daemonize = yes",
        "",
        "[webmail]",
        f"user = {WEBMAIL_USER}",
        f"group = {WEBMAIL_USER}",
        f"listen = {s}/{WEBMAIL_FPM_SOCKET}",
        f"listen.owner = {WEBMAIL_USER}",
        f"listen.group = {WEBMAIL_USER}",
        "listen.mode = 0660",
        "; No worker until a request comes: an idle webmail costs only the master.",
        "pm = ondemand",
        "pm.max_children = 8",
        "pm.process_idle_timeout = 60s",
        "clear_env = yes",
        f"env[ROUNDCUBE_CONFIG_DIR] = {s}/{WEBMAIL_CONFIG_DIR}",
        "php_admin_flag[log_errors] = on",
        f"php_admin_value[error_log] = {s}/{WEBMAIL_LOG_DIR}/php.log",
        "php_admin_value[upload_max_filesize] = 10M",
        "php_admin_value[post_max_size] = 12M",
        "php_admin_flag[expose_php] = off",
        "",
    ])


def render_master_users(secret_sha256_b64: str, host: str) -> str:
    """Dovecot's passwd-file for the SSO master login: usable from the node itself only
    (loopback, or the node's own address when Roundcube connects to that)."""
    nets = ["127.0.0.1/32", "::1/128"]
    if host not in ("127.0.0.1", "::1"):
        nets.append(f"{host}/128" if ":" in host else f"{host}/32")
    return f"{MASTER_LOGIN}:{{SHA256.b64}}{secret_sha256_b64}::::::allow_nets={','.join(nets)}\n"


def render_edge_webmail(*, public_dir: str, fpm_socket: str, headers: list[str]) -> list[str]:
    """The edge's /webmail/ locations: static files from Roundcube's public_html, index.php
    through php-fpm; nothing else is executed."""
    return [
        "        location = /webmail {",
        "            return 301 /webmail/;",
        "        }",
        "        location ^~ /webmail/ {",
        f"            alias {public_dir}/;",
        "            index index.php;",
        "            location = /webmail/index.php {",
        "                include /etc/nginx/fastcgi_params;",
        "                fastcgi_param SCRIPT_FILENAME $request_filename;",
        "                fastcgi_param HTTPS on;",
        f"                fastcgi_pass unix:{fpm_socket};",
        "            }",
        "            location ~ \\.php$ {",
        *headers,
        "                return 404;",
        "            }",
        "        }",
    ]


# --- the token store (portal side) -------------------------------------------------------------


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class SsoStore:
    """sso.sqlite: the portal issues tokens and ends sessions; the plugin redeems and checks."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=10, isolation_level="DEFERRED")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA busy_timeout=10000")
        return conn

    def ensure_schema(self) -> None:
        conn = self.connect()
        try:
            with conn:
                conn.executescript(SSO_SCHEMA)
        finally:
            conn.close()

    def issue(self, *, address: str, session: str, organisation: str, session_expires: int,
              now: float | None = None) -> str:
        """A new one-time token for `address` in portal session `session`; returns it (only
        its hash is stored). Expired tokens are swept in the same transaction."""
        now = int(now if now is not None else time.time())
        token = secrets.token_urlsafe(32)
        conn = self.connect()
        try:
            with conn:
                conn.execute("DELETE FROM tokens WHERE expires <= ?", (now,))
                conn.execute("DELETE FROM sessions WHERE expires <= ?", (now,))
                conn.execute(
                    "INSERT INTO tokens (token_hash, address, session, organisation, expires) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (token_hash(token), address, session, organisation, now + TOKEN_SECONDS),
                )
                conn.execute(
                    "INSERT OR REPLACE INTO sessions (session, address, expires) VALUES (?, ?, ?)",
                    (session, address, session_expires),
                )
        finally:
            conn.close()
        return token

    def end_session(self, session: str) -> int:
        """Forget a portal session: its webmail sessions end on their next request."""
        conn = self.connect()
        try:
            with conn:
                conn.execute("DELETE FROM tokens WHERE session = ?", (session,))
                return conn.execute("DELETE FROM sessions WHERE session = ?",
                                    (session,)).rowcount
        finally:
            conn.close()

    def live_sessions(self, address: str) -> int:
        conn = self.connect()
        try:
            return conn.execute("SELECT count(*) FROM sessions WHERE address = ?",
                                (address,)).fetchone()[0]
        finally:
            conn.close()
