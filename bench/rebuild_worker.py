"""B7's second design: a Celery worker whose every reconcile rewrites the whole node.

`celery -A bench.rebuild_worker worker …` runs the portal's own Celery app and task, with one
function swapped in this process only: the task's incremental apply becomes docker-mailserver's
design, where every change rebuilds everything. Every mailbox, alias and domain is rendered, the
DKIM keys and tables are written again, every lookup row is replaced (one transaction, so
readers never see a half-empty store) and Postfix, Dovecot and OpenDKIM are reloaded. Nothing of
the portal's code changes; the other B7 design (MAILHOST_RECONCILE_FORCE_FULL: a full render
with a diff-apply, the portal's periodic sweep) is the kinder comparison.
"""

import os
import tempfile
from pathlib import Path

from mailhost.celery import app  # the portal's app: same broker, queues and task names

__all__ = ["app"]


def _rewrite(path: Path, spec) -> None:
    """Write a file even when its content is unchanged (temp file, fsync, rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "wb") as handle:
        handle.write(spec.data)
        handle.flush()
        os.fsync(handle.fileno())
    os.chmod(tmp, spec.mode)
    if spec.uid != -1 or spec.gid != -1:
        os.chown(tmp, spec.uid, spec.gid)
    os.replace(tmp, path)


def rebuild_everything(node, config=None) -> int:
    from mailhost.backend import lookup
    from mailhost.backend.apply import ManagedFiles
    from mailhost.backend.config import NodeConfig
    from mailhost.backend.stack import Stack
    from nodes import reconcile, snapshot

    config = config or NodeConfig.from_settings(state_dir=Path(node.state_dir))
    with reconcile.node_lock(config.state_dir):
        node.refresh_from_db()
        target = node.desired_revision
        plan = reconcile.plan_full(node, config)
        mailboxes = snapshot.mailboxes(node)
        plan.files |= reconcile._sieve_specs([m for m in mailboxes if m.sieve is not None])[0]
        rows = reconcile._render_rows(
            str(config.state_dir), snapshot.domains(node), mailboxes, snapshot.aliases(node)
        )
        stack = Stack(config)
        stack.prepare()
        for relative, spec in plan.files.items():
            _rewrite(config.path(relative), spec)
        ManagedFiles(config.state_dir).record(plan.files)
        conn = lookup.connect(config.lookup_db)
        try:
            with conn:
                for table, columns in lookup.TABLES.items():
                    names = ("src", *columns)
                    conn.execute(f"DELETE FROM {table}")  # noqa: S608 (fixed names)
                    conn.executemany(
                        f"INSERT INTO {table} ({','.join(names)}) "  # noqa: S608
                        f"VALUES ({','.join('?' * len(names))})",
                        rows.get(table, ()),
                    )
        finally:
            conn.close()
        for daemon in ("postfix", "dovecot", "opendkim"):
            stack.reload(daemon)
        reconcile._mark_applied(node, target)
        return target


def _install() -> None:
    import django

    django.setup()
    from nodes import reconcile

    reconcile.reconcile_incremental = rebuild_everything  # what the task calls, this process only


_install()
