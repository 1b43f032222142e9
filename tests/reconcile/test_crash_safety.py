"""A worker killed in the middle of an apply leaves every row set and file either old or new.

A real `manage.py reconcile` process is SIGKILLed at several points (states the process has
reached, not delays) while it rewrites 20,000 lookup rows and the OpenDKIM files; after each
kill the lookup store must hold exactly the old rows or exactly the new ones, every managed file
must be whole, and the next reconcile completes.
"""

import contextlib
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from django.db import connection

from mailboxes.models import Domain, Mailbox
from mailhost.backend.files import sha256
from mailhost.passwords import hash_password
from nodes.changes import node_default, record_change
from nodes.models import MailNode, NodeChange
from tests.factories import OrganisationFactory

MAILBOXES = 20_000


def _database_url() -> str:
    s = connection.settings_dict
    return f"postgres://{s['USER']}:{s['PASSWORD']}@{s['HOST']}:{s['PORT']}/{s['NAME']}"


def _run_reconcile(env) -> None:
    process = subprocess.run(
        [sys.executable, "manage.py", "reconcile"], env=env, capture_output=True, timeout=300
    )
    assert process.returncode == 0, process.stderr.decode()


def _kill_when(env, reached: Callable[[int], bool]) -> int:
    """Run a reconcile and SIGKILL it as soon as `reached(pid)` holds; its exit status.

    Kill points are states of the process, not delays, so they land in the same places on a
    fast machine and a loaded one (a process that finishes first is simply not killed).
    """
    process = subprocess.Popen(
        [sys.executable, "manage.py", "reconcile"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 300
    while process.poll() is None and time.monotonic() < deadline:
        if reached(process.pid):
            process.send_signal(signal.SIGKILL)
            break
        time.sleep(0.001)
    return process.wait(timeout=300)


def _open_files(pid: int) -> list[str]:
    paths = []
    for fd in Path(f"/proc/{pid}/fd").glob("*"):
        with contextlib.suppress(OSError):
            paths.append(os.readlink(fd))
    return paths


def _written_bytes(pid: int) -> int:
    """Bytes the process has written so far (the lookup store's WAL is nearly all of it)."""
    with contextlib.suppress(OSError), open(f"/proc/{pid}/io") as io:
        return int(next(line for line in io if line.startswith("wchar:")).split()[1])
    return 0


def _kill_points(state_dir: Path) -> dict[str, Callable[[int], bool]]:
    """From "the lookup store is open, nothing written yet" through the row transaction (its
    WAL grows to ~7 MB, ~90 MB written in all for 20,000 rows) to the OpenDKIM files."""
    points = {
        "lookup store open": lambda pid: any(p.endswith("lookup.sqlite") for p in _open_files(pid)),
    }
    for megabytes in (1, 3, 6, 12, 25, 50, 75):
        points[f"{megabytes} MB written"] = lambda pid, n=megabytes: (
            _written_bytes(pid) >= n * 1_000_000
        )
    opendkim = str(state_dir / "opendkim")
    points["writing OpenDKIM files"] = lambda pid: any(
        p.startswith(opendkim) for p in _open_files(pid)
    )
    return points


def old_key_table_ok(state_dir: Path) -> bool:
    return b"._domainkey.crash.test crash.test:" in (state_dir / "opendkim/KeyTable").read_bytes()


def _rows(db: Path) -> frozenset:
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        return frozenset(conn.execute("SELECT address, can_login FROM mailboxes"))
    finally:
        conn.close()


@pytest.fixture
def state_dir():
    path = Path(tempfile.mkdtemp(prefix="mhk", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.django_db(transaction=True)
def test_it_leaves_old_or_new_state_when_killed_mid_apply(settings, state_dir):
    settings.MAILHOST_NODE_STATE_DIR = state_dir
    node = node_default()
    MailNode.objects.filter(pk=node.pk).update(state_dir=str(state_dir))
    org = OrganisationFactory()
    from mailboxes.services import domain_create
    from tenants.access import SYSTEM

    domain = domain_create(actor=SYSTEM, organisation=org, name="crash.test")
    password_hash = hash_password("irrelevant pw", rounds=4)
    Mailbox.objects.bulk_create(
        Mailbox(domain=domain, local_part=f"u{i}", password_hash=password_hash, quota_mb=1)
        for i in range(MAILBOXES)
    )
    env = os.environ | {"DATABASE_URL": _database_url(), "MAILHOST_NODE_STATE_DIR": str(state_dir)}
    _run_reconcile(env)
    db = state_dir / "lookup/lookup.sqlite"
    old_rows = _rows(db)
    assert len(old_rows) == MAILBOXES and {login for _, login in old_rows} == {1}
    assert old_key_table_ok(state_dir)
    key_table = state_dir / "opendkim/KeyTable"
    old_key_table = key_table.read_bytes()

    # The new state: every mailbox row changes, and the KeyTable empties (a disabled domain
    # neither receives nor signs).
    Domain.objects.filter(pk=domain.pk).update(status="disabled")
    record_change(node_id=node.pk, kind=NodeChange.Kind.DOMAIN, object_id=domain.pk)
    new_rows = frozenset((address, 0) for address, _ in old_rows)

    killed_mid_run = []
    for point, reached in _kill_points(state_dir).items():
        if _kill_when(env, reached) == -signal.SIGKILL:
            killed_mid_run.append(point)
        assert _rows(db) in (old_rows, new_rows), f"killed at {point}"
        assert key_table.read_bytes() in (old_key_table, b""), f"killed at {point}"
    assert len(killed_mid_run) >= 3, f"only {killed_mid_run} landed while the reconcile ran"

    _run_reconcile(env)
    assert _rows(db) == new_rows
    assert key_table.read_bytes() == b""
    assert not list((state_dir / "opendkim/keys").iterdir())
    manifest = (state_dir / "managed.json").read_text()
    assert sha256(key_table.read_bytes()) in manifest
    node.refresh_from_db()
    assert node.applied_revision == node.desired_revision
