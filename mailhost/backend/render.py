"""Pure renderers: snapshots in, lookup rows and file contents out.

No ORM, no I/O, no clock. Output is sorted so the same state always renders the same bytes.
Every name is checked again here (defence in depth): a hostile value that somehow got past
the service layer raises UnsafeValue instead of reaching a map or a file.
"""

import functools
import re
from pathlib import PurePosixPath

from mailhost.backend.model import AliasSnap, DkimSnap, DomainSnap, MailboxSnap
from mailhost.backend.sieve import render_scripts

Rows = dict[str, set[tuple]]  # table → rows, each row starting with its `src`
TableRow = tuple[str, tuple]  # (table, row): one row of one table

# A hosted address (mailbox, alias, sender login): the one local-part grammar Postfix
# (recipient_delimiter = +) and Dovecot (auth_username_chars) both serve, the same as
# mailhost.names.HOSTED_LOCAL_PART; empty only for a catch-all alias ('@domain').
_SAFE_HOSTED_ADDRESS = re.compile(
    r"^(?:[a-z0-9](?:[a-z0-9_-]|\.(?=[a-z0-9_-]))*)?@[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?$"
)
# A destination we forward to may live anywhere: broader, but nothing that breaks a map line
# (',' separates destinations), a Sieve string or a path.
_SAFE_ADDRESS = re.compile(r"^[a-z0-9!#$%&'*+=?^_`{}~.-]*@[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?$")
_SAFE_DOMAIN = re.compile(r"^[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?$")
_SAFE_SELECTOR = re.compile(r"^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$")
_SAFE_HOME_ID = re.compile(r"^[0-9a-f-]{32,36}$")
_SAFE_HASH = re.compile(r"^\{[A-Z0-9-]+\}[\x21-\x7e]+$")


class UnsafeValue(ValueError):
    """A value that must never reach a lookup row or a config file."""


def _check(pattern: re.Pattern, value: str, what: str) -> str:
    # ".." guards names that reach paths; a password hash is only ever a bound SQLite value,
    # and bcrypt's alphabet has "." (about 1 hash in 80 contains "..").
    dots = ".." in value if isinstance(value, str) and pattern is not _SAFE_HASH else False
    if not isinstance(value, str) or not pattern.fullmatch(value) or dots:
        raise UnsafeValue(f"refusing to render {what} {value!r}")
    return value


def empty_rows() -> Rows:
    return {
        "domains": set(),
        "mailboxes": set(),
        "app_passwords": set(),
        "aliases": set(),
        "sender_logins": set(),
        "role_routes": set(),
    }


def src_of(kind: str, object_id: int) -> str:
    return f"{kind}:{object_id}"


def mailbox_home(state_dir: str, home_id: str) -> str:
    return f"{_mail_root(state_dir)}/{_check(_SAFE_HOME_ID, home_id, 'home id')}"


@functools.lru_cache(maxsize=8)
def _mail_root(state_dir: str) -> str:
    # Once per state dir, not per mailbox: pathlib costs ~9 µs a call, 0.9 s at 100,000.
    return str(PurePosixPath(state_dir) / "mail")


def domain_table_rows(domain: DomainSnap) -> list[TableRow]:
    if not (domain.active and domain.verified):
        return []
    return [("domains", (src_of("domain", domain.id), _check(_SAFE_DOMAIN, domain.name, "domain")))]


def domain_rows(domain: DomainSnap) -> Rows:
    return as_rows(domain_table_rows(domain))


# Role addresses every hosted domain accepts: postmaster (RFC 5321 4.5.1) and abuse (RFC 2142).
ROLE_LOCAL_PARTS = ("abuse", "postmaster")


def role_table_rows(domain: DomainSnap) -> list[TableRow]:
    """The domain's role addresses and where they go. Postfix's alias query gives a mailbox or
    alias the organisation created at the same address precedence, and sends the role address
    to the operator mailbox while the target cannot receive (mailhost.backend.config
    .postfix_role_query), so a deleted target never makes postmaster@ bounce. Nothing may send
    as a role address: these rows give no sender login."""
    if not (domain.active and domain.verified):
        return []
    name = _check(_SAFE_DOMAIN, domain.name, "domain")
    target = domain.role_target and _check(_SAFE_ADDRESS, domain.role_target, "role target")
    src = src_of("roles", domain.id)
    return [("role_routes", (src, f"{local}@{name}", target)) for local in ROLE_LOCAL_PARTS]


def role_rows(domain: DomainSnap) -> Rows:
    return as_rows(role_table_rows(domain))


def mailbox_table_rows(mailbox: MailboxSnap, state_dir: str) -> list[TableRow]:
    """A deleted mailbox renders nothing: its address stops working at once. Neither does one
    on a domain whose ownership is not verified: its address may be someone else's.

    (table, row) pairs: the full reconcile merges them with the lookup store's rows as they
    stream from the database, in address order."""
    if mailbox.deleted or not mailbox.domain_verified:
        return []
    src = src_of("mailbox", mailbox.id)
    address = _check(_SAFE_HOSTED_ADDRESS, mailbox.address, "address")
    if address.startswith("@"):
        raise UnsafeValue(f"refusing to render mailbox address {address!r}")
    _check(_SAFE_HASH, mailbox.password_hash, "password hash")
    can_login = mailbox.can_login
    rows: list[TableRow] = [(
        "mailboxes",
        (
            src,
            address,
            mailbox.password_hash,
            mailbox_home(state_dir, mailbox.home_id),
            mailbox.quota_mb * 1024 * 1024,
            int(can_login),
            int(mailbox.can_receive),
        ),
    )]  # fmt: skip
    if can_login:
        for app_hash in mailbox.app_password_hashes:
            rows.append(
                ("app_passwords", (src, address, _check(_SAFE_HASH, app_hash, "password hash")))
            )
        rows.append(("sender_logins", (src, address, address)))
    return rows


def mailbox_rows(mailbox: MailboxSnap, state_dir: str) -> Rows:
    return as_rows(mailbox_table_rows(mailbox, state_dir))


def alias_table_rows(alias: AliasSnap) -> list[TableRow]:
    """Destinations that are logins may also send as the alias (Postfix checks the login)."""
    if not (alias.active and alias.domain_active and alias.domain_verified):
        return []
    src = src_of("alias", alias.id)
    address = _check(_SAFE_HOSTED_ADDRESS, alias.address, "alias address")
    destinations = [_check(_SAFE_ADDRESS, d, "destination") for d in alias.destinations]
    if not destinations:
        raise UnsafeValue(f"alias {address!r} has no destinations")
    rows: list[TableRow] = [("aliases", (src, address, ",".join(destinations)))]
    if not address.startswith("@"):
        rows += [("sender_logins", (src, address, d)) for d in destinations]
    return rows


def alias_rows(alias: AliasSnap) -> Rows:
    return as_rows(alias_table_rows(alias))


def as_rows(pairs: list[TableRow]) -> Rows:
    rows = empty_rows()
    for table, row in pairs:
        rows[table].add(row)
    return rows


def merge(into: Rows, more: Rows) -> Rows:
    for table, rows in more.items():
        if rows:  # most tables of one object are empty: 100,000 objects × 5 tables a full pass
            into[table] |= rows
    return into


OPENDKIM_KEY_TABLE = "opendkim/KeyTable"
OPENDKIM_SIGNING_TABLE = "opendkim/SigningTable"
OPENDKIM_KEYS_DIR = "opendkim/keys"


def dkim_files(keys: list[DkimSnap], state_dir: str) -> dict[str, bytes]:
    """OpenDKIM's KeyTable, SigningTable (keyed by domain) and one private key per domain."""
    key_lines, signing_lines, files = [], [], {}
    for key in sorted(keys, key=lambda k: (k.domain, k.selector)):
        domain = _check(_SAFE_DOMAIN, key.domain, "DKIM domain")
        selector = _check(_SAFE_SELECTOR, key.selector, "DKIM selector")
        relative = f"{OPENDKIM_KEYS_DIR}/{domain}.{selector}.private"
        key_name = f"{selector}._domainkey.{domain}"
        key_path = PurePosixPath(state_dir) / relative
        key_lines.append(f"{key_name} {domain}:{selector}:{key_path}\n")
        signing_lines.append(f"{domain} {key_name}\n")
        files[relative] = key.private_key_pem
    files[OPENDKIM_KEY_TABLE] = "".join(key_lines).encode()
    files[OPENDKIM_SIGNING_TABLE] = "".join(signing_lines).encode()
    return files


def sieve_files(mailbox: MailboxSnap) -> dict[str, bytes | None]:
    """The mailbox's portal Sieve scripts: {path relative to the state dir: content, or None
    where there must be no file}. Never the user's own scripts (see mailhost.backend.sieve)."""
    home = f"mail/{_check(_SAFE_HOME_ID, mailbox.home_id, 'home id')}"
    spec = mailbox.sieve
    if mailbox.deleted or not mailbox.domain_verified:
        spec = None
    for destination in spec.forward_to if spec else ():
        _check(_SAFE_ADDRESS, destination, "forwarding address")
    return {
        f"{home}/{path}": None if script is None else script.encode()
        for path, script in render_scripts(spec).items()
    }
