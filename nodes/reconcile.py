"""Bringing a node's mail stack to the desired state.

Incremental (the default, on every change): read the node's change log since the applied
revision, re-render only the objects it names, write the row difference in one SQLite
transaction and only the files that changed, then record the revision. Its cost depends on the
size of the change, not on the number of mailboxes.

Full (periodic, and `manage.py reconcile`): render everything, diff every row and managed file,
repair what differs. Its rows are never all in memory: mailboxes and aliases stream from the
database in address order and are merged with the lookup store's rows read in the same order
(mailhost.backend.apply.LookupSync), all writes in one SQLite transaction. Run after the
incremental pass, whatever it still finds is drift (a row or file changed by hand), which is
reported on the node and then repaired.

What the node is rendered from comes from the apps, through nodes.snapshot; when it runs is
nodes.scheduling's business.
"""

import fcntl
import functools
import grp
import hashlib
import logging
import os
import pwd
import secrets
import shutil
import stat
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from django.db import transaction
from django.utils import timezone

from mailhost.backend import dav, lookup, model
from mailhost.backend import mailcrypt as mail_crypt_store
from mailhost.backend import render as render_module
from mailhost.backend.apply import (
    FileChange,
    FileSpec,
    LookupSync,
    ManagedFiles,
    RowChanges,
    RowDiff,
    diff_rows,
    write_rows,
)
from mailhost.backend.certificates import domain_spec
from mailhost.backend.config import MAIL_GID, MAIL_UID, NodeConfig, render_static_files
from mailhost.backend.edge import EDGE_SITES, EdgeSite, render_edge_sites
from mailhost.backend.files import write_atomic
from mailhost.backend.forwarding import ARC_CONF, ARC_DIR, SRS_SECRETS, forwarding_files
from mailhost.backend.model import MailboxSnap
from mailhost.backend.outbound import OutboundDiff, OutboundSnap
from mailhost.backend.outbound import apply as apply_outbound
from mailhost.backend.peers import render_peer_transport
from mailhost.backend.relays import SECRET_FILES as RELAY_SECRET_FILES
from mailhost.backend.relays import render_relay_files
from mailhost.backend.render import (
    OPENDKIM_KEY_TABLE,
    OPENDKIM_KEYS_DIR,
    OPENDKIM_SIGNING_TABLE,
    Rows,
    alias_rows,
    alias_table_rows,
    dkim_files,
    domain_rows,
    domain_table_rows,
    empty_rows,
    mailbox_rows,
    mailbox_table_rows,
    merge,
    role_rows,
    role_table_rows,
    sieve_files,
    src_of,
)
from mailhost.backend.sieve import HEADER as SIEVE_HEADER
from mailhost.backend.sieve import LEGACY_ACTIVE_SCRIPT, PORTAL_DIR
from mailhost.backend.stack import Stack
from nodes import snapshot
from nodes.models import MailNode, NodeChange

logger = logging.getLogger(__name__)

MAX_STORED_DRIFT = 200  # drift lines kept on the node row (the log and report keep all)


# --- planning --------------------------------------------------------------------------------


@dataclass
class Plan:
    """What a reconcile wants: rows for `srcs` (all when None) and files in `file_scope`.
    `rows` None: every row of the node, streamed by `execute` (the full pass)."""

    rows: Rows | None
    srcs: set[str] | None
    files: dict[str, FileSpec]
    static: dict[str, FileSpec]  # node config, written (validated) by the stack runner
    file_scope: set[str] | None
    mailboxes: list[MailboxSnap]
    outbound: OutboundSnap | None = None  # the outbound policy stores (None: untouched)
    mail_crypt: set[tuple] | None = None  # the mail_crypt key store's rows (None: untouched)


@dataclass
class Report:
    revision: int
    rows: RowDiff | RowChanges
    files: list[FileChange]
    drift: list[str] = field(default_factory=list)
    reloaded: list[str] = field(default_factory=list)
    outbound: OutboundDiff = field(default_factory=OutboundDiff)
    mail_crypt: mail_crypt_store.KeyDiff = field(
        default_factory=lambda: mail_crypt_store.KeyDiff(set(), set()))

    @property
    def changed(self) -> bool:
        return bool(self.rows.count or self.files or self.outbound.count or self.mail_crypt.count)

    def describe(self) -> list[str]:
        lines = self.rows.describe() + self.outbound.describe() + self.mail_crypt.describe()
        lines += [f"{'~' if c.action == 'write' else '-'} file {c.path}" for c in self.files]
        return lines


def _dkim_owner() -> tuple[int, int]:
    try:
        entry = pwd.getpwnam("opendkim")
        return entry.pw_uid, entry.pw_gid
    except KeyError:
        return -1, -1


def _dkim_specs(node: MailNode, config: NodeConfig) -> dict[str, FileSpec]:
    uid, gid = _dkim_owner()
    specs = {}
    for path, data in dkim_files(snapshot.active_dkim_keys(node), str(config.state_dir)).items():
        secret = path.startswith(OPENDKIM_KEYS_DIR + "/")
        specs[path] = FileSpec(data, mode=0o600 if secret else 0o644, uid=uid, gid=gid)
    return specs


def _sieve_specs(mailboxes: list[MailboxSnap]) -> tuple[dict[str, FileSpec], set[str]]:
    specs, scope = {}, set()
    for mailbox in mailboxes:
        for path, data in sieve_files(mailbox).items():
            scope.add(path)
            if data is not None:
                specs[path] = FileSpec(data, mode=0o600, uid=MAIL_UID, gid=MAIL_GID)
    return specs, scope


def _forwarding_specs(node: MailNode, config: NodeConfig) -> dict[str, FileSpec]:
    """postsrsd's secrets (root only), the ARC key (Rspamd's alone) and Rspamd's ARC config;
    nothing until the portal has a secret (the node keeps the one it made itself)."""
    snap = snapshot.forwarding(node)
    if snap is None:
        return _forwarding_kept(config)
    try:
        rspamd = pwd.getpwnam("_rspamd")
        rspamd_ids = rspamd.pw_uid, rspamd.pw_gid
    except KeyError:
        rspamd_ids = -1, -1
    specs = {}
    for path, data in forwarding_files(str(config.state_dir), snap).items():
        if path == SRS_SECRETS:
            specs[path] = FileSpec(data, mode=0o600)
        elif path.startswith(ARC_DIR + "/"):
            specs[path] = FileSpec(data, mode=0o600, uid=rspamd_ids[0], gid=rspamd_ids[1])
        else:
            specs[path] = FileSpec(data)
    return specs


def _forwarding_kept(config: NodeConfig) -> dict[str, FileSpec]:
    """No secret in the portal (yet, or any more): the forwarding files the reconciler wrote
    before stay as they are, so a full pass never leaves postsrsd without a secret or Rspamd
    without its ARC config (the stack runner makes the node's own when there are none)."""
    kept = {}
    for path in ManagedFiles(config.state_dir).manifest:
        if path in (SRS_SECRETS, ARC_CONF) or path.startswith(ARC_DIR + "/"):
            current = config.path(path)
            if current.exists():
                info = current.stat()
                kept[path] = FileSpec(current.read_bytes(), mode=info.st_mode & 0o7777,
                                      uid=info.st_uid, gid=info.st_gid)
    return kept


def _forwarding_scope(config: NodeConfig, specs: dict[str, FileSpec]) -> set[str]:
    """The forwarding files a pass owns: the new ones and every managed ARC key (an old key
    leaves when the portal replaced it)."""
    managed = ManagedFiles(config.state_dir).manifest
    return set(specs) | {p for p in managed if p.startswith(ARC_DIR + "/")}


def _inbound_specs(node: MailNode, config: NodeConfig) -> dict[str, FileSpec]:
    return {path: FileSpec(data) for path, data in snapshot.inbound_files(node, config).items()}


def _relay_specs(node: MailNode) -> dict[str, FileSpec]:
    """The relay tables; the password table readable by root and Postfix alone."""
    try:
        postfix_gid = grp.getgrnam("postfix").gr_gid
    except KeyError:
        postfix_gid = -1
    return {
        path: FileSpec(data, mode=0o640, gid=postfix_gid) if path in RELAY_SECRET_FILES
        else FileSpec(data)
        for path, data in render_relay_files(snapshot.relays(node)).items()
    }
def _peer_specs(node: MailNode, config: NodeConfig) -> dict[str, FileSpec]:
    """The transports to the other nodes' domains (rendered whole: one line per domain)."""
    routes = render_peer_transport(snapshot.peer_routes(node), config.ports["forward"])
    return {path: FileSpec(data) for path, data in routes.items()}


def _tls_policy_specs(node: MailNode, config: NodeConfig) -> dict[str, FileSpec]:
    return {path: FileSpec(data) for path, data in snapshot.tls_policy_files(node, config).items()}


def _edge_site(state_dir: Path, name: str) -> EdgeSite:
    """A live domain on the edge, with its own certificate once it has one (else the node's)."""
    spec = domain_spec(name)
    if (state_dir / spec.cert).exists() and (state_dir / spec.key).exists():
        return EdgeSite(name, cert=spec.cert, key=spec.key)
    return EdgeSite(name)


def _edge_specs(node: MailNode, config: NodeConfig) -> dict[str, FileSpec]:
    """The edge's sites: every live (active, verified) domain's service hosts."""
    sites = [_edge_site(config.state_dir, name) for name in snapshot.live_domain_names(node)]
    text = render_edge_sites(state_dir=str(config.state_dir), bind_address=config.bind_address,
                             https_port=config.ports["https"], edge=config.edge, sites=sites)
    return {EDGE_SITES: FileSpec(text.encode())}


def apply_edge_sites(node: MailNode, config: NodeConfig | None = None) -> bool:
    """Re-render the edge's sites alone (a domain certificate was issued) and reload the edge
    if they changed; True if they did."""
    config = config or NodeConfig.from_settings(state_dir=Path(node.state_dir))
    with node_lock(config.state_dir):
        managed = ManagedFiles(config.state_dir)
        specs = _edge_specs(node, config)
        changes = managed.plan(specs, set(specs))
        managed.apply(specs, changes)
        return bool(_reload(Stack(config), changes))


def _render_rows(node_state_dir: str, domains, mailboxes, aliases) -> Rows:
    rows = empty_rows()
    for domain in domains:
        merge(rows, domain_rows(domain))
        merge(rows, role_rows(domain))
    for mailbox in mailboxes:
        merge(rows, mailbox_rows(mailbox, node_state_dir))
    for alias in aliases:
        merge(rows, alias_rows(alias))
    return rows


def plan_incremental(node: MailNode, config: NodeConfig, changes: list[tuple[str, int]]) -> Plan:
    ids: dict[str, set[int]] = defaultdict(set)
    for kind, object_id in changes:
        ids[kind].add(object_id)
    domain_ids = ids[NodeChange.Kind.DOMAIN]
    domains = snapshot.domains(node, domain_ids)
    mailboxes = snapshot.mailboxes(node, ids=ids[NodeChange.Kind.MAILBOX])
    aliases = snapshot.aliases(node, ids=ids[NodeChange.Kind.ALIAS])
    if domain_ids:  # a domain's status decides whether its addresses work
        mailboxes += snapshot.mailboxes(node, domain_ids=domain_ids)
        aliases += snapshot.aliases(node, domain_ids=domain_ids)
    srcs = {src_of("domain", i) for i in domain_ids}
    srcs |= {src_of("mailbox", i) for i in ids[NodeChange.Kind.MAILBOX]}
    srcs |= {src_of("alias", i) for i in ids[NodeChange.Kind.ALIAS]}
    srcs |= {src_of("mailbox", m.id) for m in mailboxes} | {src_of("alias", a.id) for a in aliases}
    # Role addresses: with their domain, or alone (who the first admin is changed).
    role_ids = ids[NodeChange.Kind.ROLES] - domain_ids
    srcs |= {src_of("roles", i) for i in domain_ids | role_ids}
    files, scope = _sieve_specs(mailboxes)
    if domain_ids or ids[NodeChange.Kind.DKIM]:
        dkim = _dkim_specs(node, config)
        files |= dkim
        scope |= set(dkim) | {OPENDKIM_KEY_TABLE, OPENDKIM_SIGNING_TABLE}
        scope |= {
            p for p in ManagedFiles(config.state_dir).manifest if p.startswith(OPENDKIM_KEYS_DIR)
        }
    if domain_ids or ids[NodeChange.Kind.DKIM]:  # inbound policy, and records in local mode
        inbound = _inbound_specs(node, config)
        files |= inbound
        scope |= set(inbound)
    if domain_ids or ids[NodeChange.Kind.RELAY]:  # a domain's relay follows its status
        relays = _relay_specs(node)
        files |= relays
        scope |= set(relays)
    if ids[NodeChange.Kind.TLS_POLICY]:  # the outbound TLS policy map: all of it
        tls = _tls_policy_specs(node, config)
        files |= tls
        scope |= set(tls)
    if ids[NodeChange.Kind.PEERS]:  # another node's live domains: the transports to it
        peers = _peer_specs(node, config)
        files |= peers
        scope |= set(peers)
    if ids[NodeChange.Kind.FORWARDING]:  # SRS secrets or the ARC key
        forwarding = _forwarding_specs(node, config)
        files |= forwarding
        scope |= _forwarding_scope(config, forwarding)
    if domain_ids:  # a domain came, went live or left: the edge's sites
        edge = _edge_specs(node, config)
        files |= edge
        scope |= set(edge)
    rows = _render_rows(str(config.state_dir), domains, mailboxes, aliases)
    for domain in snapshot.domains(node, role_ids) if role_ids else ():
        merge(rows, role_rows(domain))
    # The outbound stores are small and keyed by sending domain: re-rendered whole when an
    # organisation's policy changed or a domain came, went live or left.
    outbound = snapshot.outbound(node) if domain_ids or ids[NodeChange.Kind.OUTBOUND] else None
    # The key store too (one row per domain of an organisation with a key): whole, when an
    # organisation turned encryption on or off or a domain came, was verified or left.
    keys = (_mail_crypt_rows(node) if domain_ids or ids[NodeChange.Kind.MAIL_CRYPT]
            else None)
    return Plan(rows=rows, srcs=srcs, files=files, static={}, file_scope=scope,
                mailboxes=mailboxes, outbound=outbound, mail_crypt=keys)


def _mail_crypt_rows(node: MailNode) -> set[tuple]:
    return mail_crypt_store.render_rows(snapshot.mail_crypt_keys(node))


def plan_full(node: MailNode, config: NodeConfig) -> Plan:
    """Files and static config; the rows (and the portal's Sieve files, which come with the
    mailboxes) are streamed by `execute`."""
    static = {path: FileSpec(data) for path, data in render_static_files(config).items()}
    files = _dkim_specs(node, config)
    files |= _inbound_specs(node, config)
    files |= _edge_specs(node, config)
    files |= _relay_specs(node)
    files |= _tls_policy_specs(node, config)
    files |= _forwarding_specs(node, config)
    files |= _peer_specs(node, config)
    return Plan(rows=None, srcs=None, files=files, static=static, file_scope=None, mailboxes=[],
                outbound=snapshot.outbound(node), mail_crypt=_mail_crypt_rows(node))


@dataclass
class _Streamed:
    sieve: dict[str, FileSpec] = field(default_factory=dict)  # of mailboxes with a script
    deleted_homes: list[str] = field(default_factory=list)  # archived once the rows commit


def _stream_rows(
    node: MailNode, config: NodeConfig, sync: LookupSync, managed: ManagedFiles, *, restore: bool
) -> _Streamed:
    """Push every row of the node into `sync`, table by table in key order: domains and role
    routes (one per domain: sorted here), then mailboxes and aliases merged by address as they
    stream from the database. Archived homes of mailboxes that are back are restored on the way
    (before the rows commit, as in the incremental pass); deleted ones are only noted."""
    state_dir = str(config.state_dir)
    domains = snapshot.domains(node)
    for render in (domain_table_rows, role_table_rows):
        for table, row in sorted((p for d in domains for p in render(d)), key=_row_address):
            sync.push(table, row)
    del domains
    streamed, archived_ids, moved = _Streamed(), _archived_ids(config.state_dir), set()
    aliases = snapshot.aliases_by_address(node)
    alias = next(aliases, None)
    push_all = sync.push_all
    for mailbox in snapshot.mailboxes_by_address(node):
        while alias is not None and alias.address < mailbox.address:
            push_all(alias_table_rows(alias))
            alias = next(aliases, None)
        if mailbox.deleted:
            streamed.deleted_homes.append(mailbox.home_id)
        elif (
            restore
            and mailbox.home_id in archived_ids
            and _move_home(config.state_dir, mailbox.home_id, restore=True)
        ):
            moved.add(mailbox.home_id)
        if mailbox.sieve is not None and not mailbox.deleted:
            streamed.sieve |= _sieve_specs([mailbox])[0]
        push_all(mailbox_table_rows(mailbox, state_dir))
    while alias is not None:
        push_all(alias_table_rows(alias))
        alias = next(aliases, None)
    _forget_homes(managed, moved)
    return streamed


def _row_address(pair: tuple[str, tuple]) -> str:
    return pair[1][1]


# --- applying --------------------------------------------------------------------------------


@contextmanager
def node_lock(state_dir: Path):
    """One apply at a time per node, across worker processes on the node's host."""
    state_dir.mkdir(parents=True, exist_ok=True)
    with open(state_dir / "reconcile.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _sync_maildirs(
    state_dir: Path, mailboxes: list[MailboxSnap], managed: ManagedFiles, *, restore: bool
) -> None:
    """Deleted mailboxes' homes move to archive/ (kept for the retention period), restored ones
    move back, with everything in them: mail, the user's own Sieve scripts and the portal's.
    Homes are keyed by id, so a rename never moves anything.

    Restores run before the rows are written and archiving after them, so Dovecot never
    delivers into a fresh, empty home while the real one sits in archive/. Managed files of a
    home that moved are forgotten: the manifest lists live files only, and the file plan then
    takes a restored home's portal scripts as it finds them."""
    archived_ids = _archived_ids(state_dir) if restore else set()
    moved = set()
    for mailbox in mailboxes:
        if mailbox.deleted == restore or (restore and mailbox.home_id not in archived_ids):
            continue  # not this direction, or nothing archived to restore
        if _move_home(state_dir, mailbox.home_id, restore=restore):
            moved.add(mailbox.home_id)
    _forget_homes(managed, moved)


def _archived_ids(state_dir: Path) -> set[str]:
    # One listing of archive/ (deleted mailboxes, usually few) instead of a stat per mailbox:
    # a full pass covers every mailbox, and 100,000 paths + stats cost ~1 s.
    try:
        return set(os.listdir(state_dir / "archive"))
    except FileNotFoundError:
        return set()


def _move_home(state_dir: Path, home_id: str, *, restore: bool) -> bool:
    live, archived = state_dir / "mail" / home_id, state_dir / "archive" / home_id
    source, target = (archived, live) if restore else (live, archived)
    if source.exists() and not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(source, target)
        return True
    return False


def _forget_homes(managed: ManagedFiles, moved: set[str]) -> None:
    if moved:
        managed.forget(
            [p for p in managed.manifest if p.startswith("mail/") and p.split("/")[1] in moved]
        )


def _ensure_homes(state_dir: Path, changes: list[FileChange]) -> None:
    """A portal Sieve script may be written before Dovecot ever created the home: create the
    home and its portal directory as `mail`, so Dovecot can save compiled scripts there."""
    for change in changes:
        if change.action == "write" and change.path.startswith("mail/"):
            home = state_dir / "mail" / change.path.split("/")[1]
            for directory in (home, home / PORTAL_DIR):
                if not directory.exists():
                    directory.mkdir(mode=0o700)
                    os.chown(directory, MAIL_UID, MAIL_GID)


def _remove_compiled(state_dir: Path, changes: list[FileChange]) -> None:
    """A removed portal script leaves no compiled binary (Pigeonhole's `.svbin`) behind."""
    for change in changes:
        if change.action == "remove" and change.path.endswith(".sieve"):
            (state_dir / change.path).with_suffix(".svbin").unlink(missing_ok=True)


# Written once the legacy portal scripts of a state dir have been retired (and on a new one).
SIEVE_LAYOUT_MARKER = "lib/sieve-layout"


def retire_legacy_scripts(state_dir: Path, managed: ManagedFiles, *, dry_run: bool) -> list[str]:
    """Once per node, in a full pass: take the portal's old scripts out of the users' stores.

    The portal used to write forwarding and vacation as the user's active script,
    `~/.dovecot.sieve`, a regular file starting with its header. That file now goes (its job is
    the before script's), in live and archived homes. A symlink there is a ManageSieve
    activation and any file without the header is the user's: neither is touched, and nothing
    in `~/sieve/` is. The manifest stops listing the old paths, so no later pass removes or
    "repairs" what a user activated there. Returns the retired paths."""
    legacy = [p for p in managed.manifest if p.endswith("/" + LEGACY_ACTIVE_SCRIPT)]
    marker = state_dir / SIEVE_LAYOUT_MARKER
    if dry_run:
        for path in legacy:  # a dry run shows the real plan, without the old paths
            managed.manifest.pop(path, None)
        return []
    if marker.exists() and not legacy:
        return []
    retired = []
    for root in ("mail", "archive"):
        try:
            homes = [entry.name for entry in os.scandir(state_dir / root) if entry.is_dir()]
        except FileNotFoundError:
            continue
        for home in homes:
            script = state_dir / root / home / LEGACY_ACTIVE_SCRIPT
            if _written_by_portal(script):
                script.unlink()
                script.with_suffix(".svbin").unlink(missing_ok=True)
                retired.append(f"{root}/{home}/{LEGACY_ACTIVE_SCRIPT}")
    managed.forget(legacy)
    write_atomic(marker, b"portal Sieve scripts: ~/.mailhost/ (sieve_before, sieve_after)\n")
    if retired:
        logger.info("retired %d legacy portal Sieve scripts: %s", len(retired), retired[:20])
    return retired


def _written_by_portal(script: Path) -> bool:
    try:
        if not stat.S_ISREG(os.lstat(script).st_mode):
            return False  # a ManageSieve activation (symlink): the user's
        with open(script, "rb") as handle:
            return handle.read(len(SIEVE_HEADER)) == SIEVE_HEADER.encode()
    except FileNotFoundError:
        return False


# A changed file below these directories makes the named daemon reload (postsrsd: restart).
_RELOADS = {"postfix": "postfix", "dovecot": "dovecot", "opendkim": "opendkim",
            "unbound": "unbound", "edge": "edge", "srs": "postsrsd", ARC_DIR: "rspamd"}


def _reload(stack: Stack, changes: list[FileChange]) -> list[str]:
    daemons = {_RELOADS.get(c.path.split("/", 1)[0]) for c in changes}
    daemons |= {"rspamd" for c in changes if c.path == ARC_CONF}
    daemons = sorted(daemons - {None})
    if not daemons:
        return []
    if not stack.is_running():
        # Not an error (a node whose stack is stopped reads the files when it starts), but
        # said: a stack that looks stopped while serving would otherwise keep stale tables.
        logger.info("stack not running: %s not reloaded", ", ".join(daemons))
        return []
    for daemon in daemons:
        stack.reload(daemon)
    return daemons


# The state dirs this process has prepared (`Stack.prepare`) with a config, and not seen fail
# since: key (state dir, its preparation mark, the config). Per process: a worker prepares
# once. The mark is a random token a prepare leaves in the state dir when it finds none: a
# state dir emptied or made again has none, so it is prepared again.
_prepared: set[tuple] = set()
PREPARED_MARK = ".prepared"


def _prepare_key(config: NodeConfig) -> tuple | None:
    try:
        token = (config.state_dir / PREPARED_MARK).read_text()
    except OSError:
        return None
    return (str(config.state_dir), token, repr(config))


def _prepare(stack: Stack, config: NodeConfig, *, full: bool) -> None:
    """Directories, owners, the stores' schemas (`Stack.prepare`, idempotent): on every full
    pass, and on an incremental pass unless this process prepared the same state dir with the
    same config before (~20–40 ms a pass, none of it needed again). What a prepare repairs that
    a hand broke after it is repaired by the next full pass, as any drift; and an incremental
    pass that fails forgets the state dir (`_forget_prepared`), so its retry prepares first."""
    key = _prepare_key(config)
    if not full and key is not None and key in _prepared:
        return
    stack.prepare()
    if key is None:
        _leave_mark(config.state_dir / PREPARED_MARK)
    if (key := _prepare_key(config)) is not None:
        _prepared.add(key)


def _leave_mark(mark: Path) -> None:
    """A new random token at `mark`, unless one is there (another process's: it is kept)."""
    temporary = mark.with_name(f"{mark.name}.{os.getpid()}.tmp")
    temporary.write_text(secrets.token_hex(16))
    try:
        os.link(temporary, mark)  # whole or nothing, and never over another's
    except FileExistsError:
        pass
    finally:
        temporary.unlink()


def _forget_prepared(config: NodeConfig) -> None:
    state_dir = str(config.state_dir)
    _prepared.difference_update({key for key in _prepared if key[0] == state_dir})


def execute(node: MailNode, config: NodeConfig, plan: Plan, *, dry_run: bool = False) -> Report:
    stack = Stack(config)
    if not dry_run:
        _prepare(stack, config, full=plan.rows is None)
    managed = ManagedFiles(config.state_dir)
    if plan.rows is None:
        return _execute_full(node, config, plan, stack, managed, dry_run=dry_run)
    if not dry_run:
        _sync_maildirs(config.state_dir, plan.mailboxes, managed, restore=True)
    files = managed.plan(plan.files | plan.static, plan.file_scope)
    conn = lookup.connect(config.lookup_db) if config.lookup_db.exists() else None
    try:
        rows = diff_rows(conn, plan.rows, plan.srcs) if conn else _all_added(plan.rows)
        report = Report(revision=node.desired_revision, rows=rows, files=files)
        if plan.outbound is not None:
            report.outbound = apply_outbound(config.state_dir, plan.outbound, dry_run=dry_run)
        _apply_mail_crypt(config, plan, report, dry_run=dry_run)
        if dry_run:
            return report
        write_rows(conn, rows)
    finally:
        if conn:
            conn.close()
    _sync_maildirs(config.state_dir, plan.mailboxes, managed, restore=False)
    # Calendars and contacts live in the home (mail/<home>/dav); Radicale finds them by address
    # through a link its first request makes. A deleted mailbox's link goes here.
    dav.sync_links(config.state_dir, plan.mailboxes)
    _apply_files(config, stack, managed, plan.files, plan.static, files, report)
    return report


def _execute_full(
    node: MailNode, config: NodeConfig, plan: Plan, stack: Stack, managed: ManagedFiles, *,
    dry_run: bool,
) -> Report:  # fmt: skip
    """The full pass: rows merged as they stream, in one SQLite transaction that commits
    before any file is written (as the incremental pass writes rows before files)."""
    retire_legacy_scripts(config.state_dir, managed, dry_run=dry_run)
    inputs = _rows_inputs(node, config)  # before the store's state: see LookupSync.mark_verified
    with LookupSync(config.lookup_db, dry_run=dry_run) as sync:
        # Nothing the rows are rendered from changed, and nobody wrote a row, since a pass
        # found them right: they still are, without reading a million of them again.
        unchanged = inputs is not None and sync.verified(inputs)
        if unchanged:
            scripts = _with_scripts(snapshot.sieve_mailboxes(node))
            streamed = _Streamed(sieve=_sieve_specs(scripts)[0])
            rows = sync.changes
        else:
            # In a transaction, the database cursors stream (autocommit would make PostgreSQL
            # materialise each result WITH HOLD before the first row).
            with transaction.atomic():
                streamed = _stream_rows(node, config, sync, managed, restore=not dry_run)
            rows = sync.finish()
        desired = plan.files | streamed.sieve
        files = managed.plan(desired | plan.static, None)
        report = Report(revision=node.desired_revision, rows=rows, files=files)
        if plan.outbound is not None:
            report.outbound = apply_outbound(config.state_dir, plan.outbound, dry_run=dry_run)
        _apply_mail_crypt(config, plan, report, dry_run=dry_run)
        if dry_run:
            return report
        sync.commit()
    moved = {h for h in streamed.deleted_homes if _move_home(config.state_dir, h, restore=False)}
    _forget_homes(managed, moved)
    # Calendars and contacts: the links there are (made on first use, not here), checked
    # against the rows just committed: one walk of the links, nothing held per mailbox. No
    # home is made: Dovecot and the DAV server make them on first use.
    if not (unchanged and _dav_links_synced(config, sync.writes)):
        dav.sync_links_from_store(config.state_dir, config.lookup_db)
        _note_dav_links_synced(config, sync.writes)
    _apply_files(config, stack, managed, desired, plan.static, files, report)
    if inputs is not None and not unchanged:
        sync.mark_verified(inputs)
    return report


def _apply_mail_crypt(config: NodeConfig, plan: Plan, report: Report, *, dry_run: bool) -> None:
    """Keys before rows and files: a mailbox of an encrypting organisation never receives
    mail before its domain's key is on the node."""
    if plan.mail_crypt is not None:
        path = config.path(mail_crypt_store.MAIL_CRYPT_DB)
        report.mail_crypt = mail_crypt_store.apply(path, plan.mail_crypt, dry_run=dry_run)


def _with_scripts(mailboxes: list[MailboxSnap]) -> list[MailboxSnap]:
    """As the row stream takes them: a deleted mailbox's script goes with its home."""
    return [m for m in mailboxes if m.sieve is not None and not m.deleted]


@functools.cache
def _renderer_digest() -> str:
    """The code that turns snapshots into rows: a new version compares every row once."""
    digest = hashlib.sha256()
    for module in (render_module, model, lookup):
        digest.update(Path(module.__file__).read_bytes())
    digest.update(Path(__file__).read_bytes())
    return digest.hexdigest()


def _rows_inputs(node: MailNode, config: NodeConfig) -> str | None:
    """What the node's rows are rendered from, as one digest: the database rows (by the apps'
    own digest), the state dir (in every home path) and the renderer's code. None: unknown."""
    found = snapshot.rows_inputs(node)
    if found is None:
        return None
    text = f"{_renderer_digest()} {config.state_dir} {found}"
    return hashlib.sha256(text.encode()).hexdigest()


# The DAV links' last sync: the store's write count then, and collection-root's mtime after.
DAV_SYNC_MARKER = "lib/dav-links-synced"


def _dav_links_stamp(config: NodeConfig, writes: int | None) -> str | None:
    """Links made from the same rows, and nothing added to, removed from or replaced in the
    links directory since (each changes its mtime): then they are as the last sync left them."""
    try:
        root = config.path(dav.COLLECTION_ROOT).stat()
    except FileNotFoundError:
        return None
    return None if writes is None else f"{writes} {root.st_mtime_ns}"


def _dav_links_synced(config: NodeConfig, writes: int | None) -> bool:
    stamp = _dav_links_stamp(config, writes)
    try:
        return stamp is not None and config.path(DAV_SYNC_MARKER).read_text() == stamp
    except FileNotFoundError:
        return False


def _note_dav_links_synced(config: NodeConfig, writes: int | None) -> None:
    stamp = _dav_links_stamp(config, writes)
    if stamp is not None:
        write_atomic(config.path(DAV_SYNC_MARKER), stamp.encode(), mode=0o600)
    else:
        config.path(DAV_SYNC_MARKER).unlink(missing_ok=True)


def _apply_files(
    config: NodeConfig, stack: Stack, managed: ManagedFiles, desired: dict[str, FileSpec],
    static: dict[str, FileSpec], files: list[FileChange], report: Report,
) -> None:  # fmt: skip
    _ensure_homes(config.state_dir, files)
    managed.apply(desired, [c for c in files if c.path not in static])
    _remove_compiled(config.state_dir, files)
    if any(c.path in static for c in files):
        stack.write_config()  # validates before it renames, and marks the files managed
    report.reloaded = _reload(stack, files)


def _all_added(rows: Rows) -> RowDiff:
    return RowDiff(added={table: set(values) for table, values in rows.items() if values})


def _mark_applied(node: MailNode, revision: int, **extra) -> None:
    with transaction.atomic():  # one commit, not two
        MailNode.objects.filter(pk=node.pk).update(
            applied_revision=revision, applied_at=timezone.now(), last_error="", **extra
        )
        NodeChange.objects.filter(node=node, revision__lte=revision).delete()


def _record_failure(node: MailNode, exc: Exception) -> None:
    MailNode.objects.filter(pk=node.pk).update(last_error=f"{type(exc).__name__}: {exc}"[:2000])


def reconcile_incremental(node: MailNode, config: NodeConfig | None = None) -> int:
    """Apply the node's pending changes; returns the revision now applied. Idempotent."""
    config = config or NodeConfig.from_settings(state_dir=Path(node.state_dir))
    with node_lock(config.state_dir):
        node.refresh_from_db()
        target = node.desired_revision
        if node.applied_revision >= target:
            return node.applied_revision
        changes = list(
            NodeChange.objects.filter(
                node=node, revision__gt=node.applied_revision, revision__lte=target
            ).values_list("kind", "object_id")
        )
        try:
            execute(node, config, plan_incremental(node, config, changes))
        except Exception as exc:
            _forget_prepared(config)
            _record_failure(node, exc)
            raise
        _mark_applied(node, target)
        return target


def reconcile_full(
    node: MailNode,
    config: NodeConfig | None = None,
    *,
    dry_run: bool = False,
    incremental_first: bool = True,
) -> Report:
    """Render and diff everything. Pending changes are applied first, so what the full diff
    still finds is drift: reported on the node, then repaired (unless `dry_run`).

    `incremental_first=False` skips that pre-pass: the full render is then the only apply, as
    in a rebuild-everything design (benchmark B7 compares against it), and nothing is drift."""
    config = config or NodeConfig.from_settings(state_dir=Path(node.state_dir))
    if not dry_run and incremental_first:
        reconcile_incremental(node, config)
    with node_lock(config.state_dir):
        node.refresh_from_db()
        try:
            report = execute(node, config, plan_full(node, config), dry_run=dry_run)
        except Exception as exc:
            _record_failure(node, exc)
            raise
        if dry_run:
            return report
        if incremental_first:
            report.drift = report.rows.describe() + report.outbound.describe()
            report.drift += report.mail_crypt.describe() + [
                f"file {c.path} was changed by hand" for c in report.files if c.drift
            ]
        drift_fields = {"last_drift": _stored_drift(report.drift)}
        if report.drift:
            drift_fields["last_drift_at"] = timezone.now()
            logger.warning("node %s: repaired drift: %s", node.name, report.drift[:20])
        _mark_applied(node, report.revision, **drift_fields)
        return report


def _stored_drift(lines: list[str]) -> list[str]:
    """What the node row keeps of a drift report. A node that lost its state drifts in every
    row (200,000 lines at 100,000 mailboxes): that must not become a 40 MB JSON value read
    with the node row."""
    if len(lines) <= MAX_STORED_DRIFT:
        return lines
    more = len(lines) - MAX_STORED_DRIFT + 1
    return [*lines[: MAX_STORED_DRIFT - 1], f"… and {more:,} more ({len(lines):,} in all)"]


def purge_archives(state_dir: Path, home_ids: list[str]) -> None:
    """Remove archived maildirs whose retention period is over."""
    archive_root = Path(state_dir) / "archive"
    for home_id in home_ids:
        target = archive_root / home_id
        if target.parent == archive_root and target.exists():
            shutil.rmtree(target)
