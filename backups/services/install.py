"""The install-scope items of a whole-install backup, written to files in a private directory:
the portal database (pg_dump custom format, or SQLite's online backup), the secrets the
settings generated, and each node's state that cannot be rebuilt from the database."""

import json
import os
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings
from django.db import connection

from nodes.models import MailNode

# Relative to a node's state dir: what a reconcile cannot re-create from the portal's rows.
# (DKIM keys, lookup store and every rendered file are rebuilt by a full reconcile.)
NODE_STATE_PATHS = ("tls", "srs", "arc", "webmail/secrets")
# DKIM_ENCRYPTION_KEY is the install key itself: it wraps every backup key, so it is kept
# apart from the backups (docs/operations.md), never inside them.
SECRET_SETTINGS = ("SECRET_KEY",)


class InstallBackupError(RuntimeError):
    pass


@contextmanager
def install_items() -> Iterator[list[tuple[str, str, Path]]]:
    """(kind, label, file) of every install-scope item; the files vanish on exit."""
    workdir = Path(tempfile.mkdtemp(prefix="mhbk-install-"))
    os.chmod(workdir, 0o700)
    try:
        items = [("database", connection.vendor, database_dump(workdir / "database"))]
        items.append(("secrets", "settings", _secrets(workdir / "secrets.json")))
        for node in MailNode.objects.order_by("name"):
            items.append(("node", node.name, _node_state(node, workdir / f"node-{node.pk}.tar")))
        yield items
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def database_dump(path: Path) -> Path:
    """A consistent copy of the portal database, taken while it serves."""
    db = connection.settings_dict
    if connection.vendor == "postgresql":
        env = {**os.environ, "PGPASSWORD": db.get("PASSWORD") or ""}
        argv = ["pg_dump", "-Fc", "--no-owner", "-f", str(path), "-d", db["NAME"]]
        for flag, value in (("-h", db.get("HOST")), ("-p", db.get("PORT")), ("-U", db.get("USER"))):
            if value:
                argv += [flag, str(value)]
        proc = subprocess.run(argv, env=env, capture_output=True, check=False, timeout=3600)
        if proc.returncode != 0:
            raise InstallBackupError(f"pg_dump failed: {proc.stderr.decode(errors='replace')}")
        return path
    if connection.vendor == "sqlite":
        source = sqlite3.connect(db["NAME"])
        try:
            with sqlite3.connect(path) as copy:
                source.backup(copy)
            copy.close()
        finally:
            source.close()
        return path
    raise InstallBackupError(f"no database backup for {connection.vendor}")


def _secrets(path: Path) -> Path:
    values = {name: getattr(settings, name) for name in SECRET_SETTINGS}
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(values, handle)
    return path


def _node_state(node: MailNode, path: Path) -> Path:
    state = Path(node.state_dir)
    with tarfile.open(path, "w") as archive:
        for rel in NODE_STATE_PATHS:
            if (state / rel).exists():
                archive.add(state / rel, arcname=rel)
    return path
