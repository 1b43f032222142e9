"""A full pass over a node nothing happened to: what it may skip, and what still brings it
back to reading every row.

After a full pass has brought the lookup store to the rows rendered from the database, it
records a digest of what those rows are rendered from and the store's write count. The next
full pass, finding both unchanged, knows the rows without reading them (or the DAV links, when
their directory is untouched). These tests play everything that must end that shortcut: a
hand edit of the store, a database change no service recorded (so no incremental pass wrote
it), a link removed by hand, a writer racing the pass.
"""

import os
import shutil
import sqlite3
import tempfile
import uuid
from pathlib import Path

import pytest

from mailboxes.models import Mailbox
from mailhost.backend import lookup
from mailhost.backend.apply import LookupSync
from mailhost.backend.dav import COLLECTION_ROOT, link_target
from nodes import snapshot
from nodes.changes import node_default
from nodes.models import MailNode
from nodes.reconcile import _render_rows, reconcile_full
from tests.factories import AliasFactory, DomainFactory, MailboxFactory

pytestmark = pytest.mark.django_db(transaction=True)  # outside a transaction, as the worker

HASH = "{BLF-CRYPT}$2b$04$abcdefghijklmnopqrstuuS1x6V0c5Zyt1Z0nG9i0Qm3v8P3l4pDm"


@pytest.fixture
def state_dir(settings):
    path = Path(tempfile.mkdtemp(prefix="mhv", dir="/tmp"))
    settings.MAILHOST_NODE_STATE_DIR = path
    MailNode.objects.filter(pk=node_default().pk).update(state_dir=str(path))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def node(state_dir):
    domain = DomainFactory(name="v.test")
    for local in ("ann", "bob", "cy"):
        MailboxFactory(domain=domain, local_part=local, password_hash=HASH)
    AliasFactory(domain=domain, local_part="team", destinations=["ann@v.test"])
    node = node_default()
    assert reconcile_full(node).rows.count > 0  # the store is built and verified
    return node


def store(state_dir: Path) -> dict[str, set[tuple]]:
    conn = sqlite3.connect(state_dir / lookup.LOOKUP_DB)
    try:
        return {
            table: set(conn.execute(f"SELECT src, {', '.join(columns)} FROM {table}"))  # noqa: S608
            for table, columns in lookup.TABLES.items()
        }
    finally:
        conn.close()


def rendered(node: MailNode, state_dir: Path) -> dict[str, set[tuple]]:
    return _render_rows(
        str(state_dir), snapshot.domains(node), snapshot.mailboxes(node), snapshot.aliases(node)
    )


def refuse_to_stream(monkeypatch) -> None:
    def fail(node):
        raise AssertionError("the full pass read every mailbox again")

    monkeypatch.setitem(snapshot._registry, "mailboxes_by_address", fail)


def test_an_unchanged_node_is_not_read_again_and_stays_right(node, state_dir, monkeypatch):
    refuse_to_stream(monkeypatch)
    report = reconcile_full(node)
    assert report.rows.count == 0 and report.drift == []
    assert store(state_dir) == rendered(node, state_dir)


def test_a_row_edited_by_hand_after_a_verified_pass_is_reported_and_repaired(node, state_dir):
    conn = sqlite3.connect(state_dir / lookup.LOOKUP_DB)
    with conn:
        conn.execute("UPDATE mailboxes SET can_login = 0 WHERE address = 'ann@v.test'")
        conn.execute("INSERT INTO aliases VALUES ('hand', 'rogue@v.test', 'evil@outside.example')")
    conn.close()

    report = reconcile_full(node)

    assert any("ann@v.test" in line for line in report.drift)
    assert any("rogue@v.test" in line for line in report.drift)
    assert store(state_dir) == rendered(node, state_dir)


def test_a_database_change_no_service_recorded_is_repaired(node, state_dir):
    mailbox = Mailbox.objects.get(local_part="bob")
    Mailbox.objects.filter(pk=mailbox.pk).update(quota_mb=7)  # no change log entry: no
    # incremental pass writes it, and the store's write count stays as it was

    report = reconcile_full(node)

    assert any("bob@v.test" in line and str(7 * 2**20) in line for line in report.drift)
    assert store(state_dir) == rendered(node, state_dir)


def test_a_dav_link_pointed_elsewhere_by_hand_goes(node, state_dir, monkeypatch):
    mailbox = Mailbox.objects.get(local_part="cy")
    root = state_dir / COLLECTION_ROOT
    assert not os.path.lexists(root / mailbox.address)  # no pass makes one: first use does
    root.mkdir(parents=True, exist_ok=True)
    os.symlink(link_target(str(uuid.uuid4())), root / mailbox.address)
    refuse_to_stream(monkeypatch)  # the rows are still right: only the links are read

    reconcile_full(node)

    assert not os.path.lexists(root / mailbox.address)  # its owner's next request links it


def test_a_write_racing_a_pass_keeps_the_next_pass_from_skipping(tmp_path):
    path = tmp_path / "lookup.sqlite"
    lookup.ensure_schema(path)
    with LookupSync(path) as sync:
        sync.push("domains", ("domain:1", "a.test"))
        hand = sqlite3.connect(path)  # after the pass read the store's state
        with hand:
            hand.execute("INSERT INTO domains VALUES ('hand', 'z.test')")
        hand.close()
        sync.finish()
        sync.commit()
    assert not sync.mark_verified("inputs")
    with LookupSync(path) as again:
        assert not again.verified("inputs")

    with LookupSync(path) as clean:  # a pass nobody raced may record it
        clean.push("domains", ("domain:1", "a.test"))
        clean.finish()
        clean.commit()
    assert clean.mark_verified("inputs")
    with LookupSync(path) as after:
        assert after.verified("inputs") and not after.verified("other inputs")
