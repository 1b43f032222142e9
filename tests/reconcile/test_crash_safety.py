"""A worker killed in the middle of an apply leaves every row set and file either old or new.

A real `manage.py reconcile` process is SIGKILLed at several points while it rewrites 20,000
lookup rows and the OpenDKIM files; after each kill the lookup store must hold exactly the old
rows or exactly the new ones, every managed file must be whole, and the next reconcile completes.
"""

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
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


def _run_reconcile(env, kill_after: float | None) -> int:
    process = subprocess.Popen(
        [sys.executable, "manage.py", "reconcile"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    if kill_after is None:
        _, stderr = process.communicate(timeout=300)
        assert process.returncode == 0, stderr.decode()
        return 0
    time.sleep(kill_after)
    process.send_signal(signal.SIGKILL)
    process.wait()
    return process.returncode


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
    _run_reconcile(env, None)
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

    killed_mid_run = 0
    for delay in (0.6, 0.9, 1.2, 1.5, 1.8, 2.1, 2.4, 2.7, 3.0, 3.5):
        if _run_reconcile(env, delay) == -signal.SIGKILL:
            killed_mid_run += 1
        assert _rows(db) in (old_rows, new_rows)
        assert key_table.read_bytes() in (old_key_table, b"")
    assert killed_mid_run >= 3, "no kill landed while the reconcile was running"

    _run_reconcile(env, None)
    assert _rows(db) == new_rows
    assert key_table.read_bytes() == b""
    assert not list((state_dir / "opendkim/keys").iterdir())
    manifest = (state_dir / "managed.json").read_text()
    assert sha256(key_table.read_bytes()) in manifest
    node.refresh_from_db()
    assert node.applied_revision == node.desired_revision
