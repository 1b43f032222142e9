"""The full reconcile's streamed merge: what it leaves in the node's lookup store.

The full pass never holds the node's rows in memory: rendered rows arrive in address order and
are merged with the store's rows read in key order (mailhost.backend.apply.LookupSync). These
tests read the store afterwards and compare it with what must be there: every table, rows
added, changed and removed on both sides of a batch boundary, one transaction for all of it.
"""

import random
import sqlite3
import tempfile
from pathlib import Path

import pytest
from django.utils import timezone

from mailboxes.models import Alias, AppPassword, Domain, Mailbox
from mailhost.backend import apply, lookup
from mailhost.backend.apply import LookupSync, RowOrderError
from nodes import snapshot
from nodes.changes import node_default
from nodes.models import MailNode
from nodes.reconcile import _render_rows, reconcile_full
from tests.factories import AliasFactory, AppPasswordFactory, DomainFactory, MailboxFactory

HASH = "{BLF-CRYPT}$2b$04$abcdefghijklmnopqrstuuS1x6V0c5Zyt1Z0nG9i0Qm3v8P3l4pDm"


def store(path: Path) -> dict[str, set[tuple]]:
    conn = sqlite3.connect(path)
    try:
        return {
            table: set(conn.execute(f"SELECT src, {', '.join(columns)} FROM {table}"))  # noqa: S608
            for table, columns in lookup.TABLES.items()
        }
    finally:
        conn.close()


def seed_store(path: Path, rows: dict[str, set[tuple]]) -> None:
    lookup.ensure_schema(path)
    conn = lookup.connect(path)
    with conn:
        apply.write_rows(conn, apply.RowDiff(added=rows))
    conn.close()


def in_address_order(rows: dict[str, set[tuple]]) -> list[tuple[str, tuple]]:
    """All rows of all tables interleaved by address, as the full pass pushes them; rows of
    one address in a shuffled order (the merge sorts a group itself)."""
    pairs = [(table, row) for table, table_rows in rows.items() for row in table_rows]
    random.Random(7).shuffle(pairs)
    return sorted(pairs, key=lambda pair: pair[1][1])  # stable: same-address order stays mixed


def mixed(seed: int) -> tuple[dict[str, set[tuple]], dict[str, set[tuple]]]:
    """A store's rows and the desired rows: every table gets rows only in the store, rows only
    desired, rows in both, and rows whose key is in both with other values (or another src)."""
    rng = random.Random(seed)
    current = {table: set() for table in lookup.TABLES}
    desired = {table: set() for table in lookup.TABLES}
    for n in range(400):
        address = f"{rng.choice('abxyz')}{rng.randrange(60)}@{rng.choice(['a.test', 'a-b.test'])}"
        fate = rng.choice(["keep", "add", "delete", "change", "src"])
        table = rng.choice(list(lookup.TABLES))
        width = len(lookup.TABLES[table])
        values = [address, *[f"v{n}-{i}" for i in range(1, width)]]
        if table == "domains":
            values = [address.split("@")[1] + f".n{n % 9}"]
        row = (f"mailbox:{n}", *values)
        if any(r[1 : 1 + lookup.KEYS[table]] == row[1 : 1 + lookup.KEYS[table]]
               for r in current[table] | desired[table]):
            continue  # one row per key in each side
        if fate in ("keep", "delete", "change", "src"):
            current[table].add(row)
        if fate in ("keep", "add"):
            desired[table].add(row)
        elif fate == "change" and width > lookup.KEYS[table]:
            desired[table].add((*row[:-1], row[-1] + "-new"))
        elif fate == "src":
            desired[table].add((f"alias:{n}", *row[1:]))
    return current, desired


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_it_leaves_exactly_the_desired_rows_after_a_mixed_diff(tmp_path, monkeypatch, seed):
    monkeypatch.setattr(apply, "CHUNK_ROWS", 7)  # many ranges in every table
    path = tmp_path / "lookup.sqlite"
    current, desired = mixed(seed)
    seed_store(path, current)

    with LookupSync(path) as sync:
        sync.push_all(in_address_order(desired))
        changes = sync.finish()
        sync.commit()

    assert store(path) == desired
    expected_removed = sum(len(current[t] - desired[t]) for t in lookup.TABLES)
    expected_added = sum(len(desired[t] - current[t]) for t in lookup.TABLES)
    assert (changes.removed, changes.added) == (expected_removed, expected_added)
    assert expected_removed and expected_added  # the case is really mixed
    for table in lookup.TABLES:  # every table had something to do
        assert current[table] != desired[table], table


def test_it_writes_nothing_until_it_commits_and_nothing_on_failure(tmp_path, monkeypatch):
    monkeypatch.setattr(apply, "CHUNK_ROWS", 3)
    path = tmp_path / "lookup.sqlite"
    current, desired = mixed(4)
    seed_store(path, current)
    pairs = in_address_order(desired)

    with pytest.raises(RuntimeError, match="worker died"), LookupSync(path) as sync:
        for number, (table, row) in enumerate(pairs):
            sync.push(table, row)
            if number == len(pairs) // 2:
                assert store(path) == current  # batches written, not committed: not visible
                raise RuntimeError("worker died")
    assert store(path) == current

    with LookupSync(path, dry_run=True) as sync:
        sync.push_all(pairs)
        changes = sync.finish()
        sync.commit()
    assert changes.count > 0
    assert store(path) == current


def test_it_refuses_rows_out_of_order_before_deleting_anything(tmp_path):
    path = tmp_path / "lookup.sqlite"
    rows = {"mailboxes": {("mailbox:1", "b@a.test", HASH, "/h", 1, 1, 1),
                          ("mailbox:2", "a@a.test", HASH, "/h", 1, 1, 1)}}  # fmt: skip
    seed_store(path, rows)
    with pytest.raises(RowOrderError), LookupSync(path) as sync:
        sync.push("mailboxes", ("mailbox:1", "b@a.test", HASH, "/h", 1, 1, 1))
        sync.push("mailboxes", ("mailbox:2", "a@a.test", HASH, "/h", 1, 1, 1))
        sync.finish()
        sync.commit()
    assert store(path)["mailboxes"] == rows["mailboxes"]


# --- the whole full pass, from the database ---------------------------------------------------


@pytest.fixture
def state_dir(settings):
    path = Path(tempfile.mkdtemp(prefix="mhs", dir="/tmp"))
    settings.MAILHOST_NODE_STATE_DIR = path
    node = node_default()
    MailNode.objects.filter(pk=node.pk).update(state_dir=str(path))
    yield path
    import shutil

    shutil.rmtree(path, ignore_errors=True)


def rendered(node: MailNode, state_dir: Path) -> dict[str, set[tuple]]:
    """What the node must hold, rendered the incremental pass's way: from the list snapshots,
    every row in memory, with the same renderers."""
    return _render_rows(
        str(state_dir), snapshot.domains(node), snapshot.mailboxes(node), snapshot.aliases(node)
    )


@pytest.mark.django_db
def test_a_full_reconcile_brings_the_store_to_the_rendered_rows(state_dir):
    node = node_default()
    # Names whose byte order differs from (domain, local part) order: '-' < '.' < '@' < 'a'.
    first = DomainFactory(name="a.test")
    second = DomainFactory(name="a-b.test")
    other = DomainFactory(name="b.test")
    boxes = {
        (domain, local): MailboxFactory(domain=domain, local_part=local, password_hash=HASH)
        for domain in (first, second, other)
        for local in ("x", "x-y", "x.y", "xa", "z")
    }
    AppPasswordFactory(mailbox=boxes[first, "x"], password_hash=HASH.replace("abc", "abd"))
    AppPasswordFactory(mailbox=boxes[first, "x"], password_hash=HASH.replace("abc", "abe"))
    AppPasswordFactory(mailbox=boxes[other, "z"], password_hash=HASH)
    AliasFactory(domain=first, local_part="", destinations=["x@a.test"])  # catch-all
    AliasFactory(domain=first, local_part="x-z", destinations=["z@b.test", "x@a.test"])
    AliasFactory(domain=second, local_part="team", destinations=["someone@elsewhere.example"])
    report = reconcile_full(node)
    assert report.rows.count > 0
    db = state_dir / "lookup/lookup.sqlite"
    assert store(db) == rendered(node, state_dir)

    # Every kind of change at once, in every table, on both sides of the desired state …
    Mailbox.objects.bulk_create(
        Mailbox(domain=domain, local_part=local, password_hash=HASH, quota_mb=5)
        for domain in (first, other) for local in ("w", "x-a", "x.a", "zz")
    )  # fmt: skip
    Mailbox.objects.filter(pk=boxes[first, "x.y"].pk).update(deleted_at=timezone.now())
    Mailbox.objects.filter(pk=boxes[second, "xa"].pk).update(quota_mb=7)
    Mailbox.objects.filter(pk=boxes[other, "x"].pk).update(status="suspended")
    AppPassword.objects.filter(mailbox=boxes[other, "z"]).update(revoked_at=timezone.now())
    AppPasswordFactory(mailbox=boxes[second, "z"], password_hash=HASH)
    Alias.objects.filter(domain=second, local_part="team").delete()
    Alias.objects.filter(domain=first, local_part="x-z").update(destinations=["x-y@a.test"])
    AliasFactory(domain=other, local_part="x-b", destinations=["x@b.test"])
    Domain.objects.filter(pk=second.pk).update(status="disabled")
    Domain.objects.create(
        organisation=first.organisation, node=node, name="a0.test", verified_at=timezone.now(),
        verification_method="staff",
    )
    # … and by hand on the node: rows no object renders, and rows with the wrong values.
    conn = sqlite3.connect(db)
    with conn:
        conn.execute("INSERT INTO domains VALUES ('hand', 'rogue.test')")
        conn.execute("INSERT INTO aliases VALUES ('hand', 'x-0@a.test', 'evil@outside.example')")
        conn.execute("INSERT INTO sender_logins VALUES ('hand', 'x@b.test', 'evil@a.test')")
        conn.execute("UPDATE mailboxes SET can_login = 0 WHERE address = 'xa@a.test'")
        conn.execute("UPDATE role_routes SET target = 'evil@outside.example'")
    conn.close()

    report = reconcile_full(node)

    wanted = rendered(node, state_dir)
    assert store(db) == wanted
    deleted = f"mailbox:{boxes[first, 'x.y'].pk}"
    assert deleted not in {row[0] for row in wanted["mailboxes"]}  # the reference is not trivial
    assert any("rogue.test" in line for line in report.drift)
    assert any("xa@a.test" in line for line in report.drift)
    assert report.rows.added and report.rows.removed
    assert reconcile_full(node).rows.count == 0  # and a second pass finds nothing left


@pytest.mark.django_db
def test_an_empty_selection_asks_the_database_nothing(django_assert_num_queries):
    # An incremental pass for one mailbox names no domain and no alias.
    node = node_default()
    mailbox = MailboxFactory(domain=DomainFactory(node=node))
    with django_assert_num_queries(0):
        assert snapshot.domains(node, set()) == []
        assert snapshot.mailboxes(node, ids=set()) == []
        assert snapshot.aliases(node, ids=[], domain_ids=None) == []
        assert snapshot.mailboxes(node, domain_ids=iter(())) == []
    assert [m.id for m in snapshot.mailboxes(node, ids={mailbox.pk})] == [mailbox.pk]
