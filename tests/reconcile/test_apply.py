import os

from mailhost.backend import apply as apply_module
from mailhost.backend import lookup
from mailhost.backend.apply import MANIFEST, FileSpec, ManagedFiles, diff_rows, write_rows
from mailhost.backend.files import sha256
from mailhost.backend.render import empty_rows


def rows_with(**tables):
    rows = empty_rows()
    for table, values in tables.items():
        rows[table] = set(values)
    return rows


def test_it_writes_only_the_difference_for_the_given_objects(tmp_path):
    path = tmp_path / "lookup.sqlite"
    lookup.ensure_schema(path)
    conn = lookup.connect(path)
    first = rows_with(domains={("domain:1", "a.test"), ("domain:2", "b.test")})
    write_rows(conn, diff_rows(conn, first, None))
    # Only domain:2 changed: domain:1's row is outside the scope and must survive.
    second = rows_with(domains={("domain:2", "c.test")})
    diff = diff_rows(conn, second, {"domain:2"})
    assert diff.added == {"domains": {("domain:2", "c.test")}}
    assert diff.removed == {"domains": {("domain:2", "b.test")}}
    write_rows(conn, diff)
    assert set(conn.execute("SELECT src, name FROM domains")) == {
        ("domain:1", "a.test"),
        ("domain:2", "c.test"),
    }
    assert diff_rows(conn, second, {"domain:2"}).count == 0


def test_it_reuses_an_address_freed_in_the_same_apply(tmp_path):
    path = tmp_path / "lookup.sqlite"
    lookup.ensure_schema(path)
    conn = lookup.connect(path)
    row = ("{X}hash", "/home", 1, 1, 1)
    write_rows(conn, diff_rows(conn, rows_with(mailboxes={("mailbox:1", "a@t.test", *row)}), None))
    swapped = rows_with(mailboxes={("mailbox:2", "a@t.test", *row)})
    write_rows(conn, diff_rows(conn, swapped, {"mailbox:1", "mailbox:2"}))
    assert list(conn.execute("SELECT src FROM mailboxes")) == [("mailbox:2",)]


def test_it_writes_changed_files_only_and_detects_hand_edits(tmp_path):
    managed = ManagedFiles(tmp_path)
    desired = {"postfix/main.cf": FileSpec(b"one\n"), "opendkim/KeyTable": FileSpec(b"k\n", 0o600)}
    changes = managed.plan(desired)
    assert [c.path for c in changes] == ["opendkim/KeyTable", "postfix/main.cf"]
    managed.apply(desired, changes)
    assert (tmp_path / "postfix/main.cf").read_bytes() == b"one\n"
    assert os.stat(tmp_path / "opendkim/KeyTable").st_mode & 0o777 == 0o600
    assert ManagedFiles(tmp_path).plan(desired) == []

    (tmp_path / "postfix/main.cf").write_bytes(b"hand edit\n")
    (tmp_path / "opendkim/KeyTable").unlink()
    managed = ManagedFiles(tmp_path)
    changes = managed.plan(desired)
    assert [(c.path, c.action, c.drift) for c in changes] == [
        ("opendkim/KeyTable", "write", True),
        ("postfix/main.cf", "write", True),
    ]
    managed.apply(desired, changes)
    assert (tmp_path / "postfix/main.cf").read_bytes() == b"one\n"


def test_it_removes_files_it_no_longer_wants(tmp_path):
    managed = ManagedFiles(tmp_path)
    desired = {"opendkim/keys/a.test.s1.private": FileSpec(b"K", 0o600)}
    managed.apply(desired, managed.plan(desired))
    managed = ManagedFiles(tmp_path)
    changes = managed.plan({})
    assert [(c.path, c.action) for c in changes] == [("opendkim/keys/a.test.s1.private", "remove")]
    managed.apply({}, changes)
    assert not (tmp_path / "opendkim/keys/a.test.s1.private").exists()
    assert ManagedFiles(tmp_path).manifest == {}


def test_a_pass_that_touches_no_file_leaves_the_manifest_unread_and_unwritten(tmp_path):
    managed = ManagedFiles(tmp_path)
    desired = {"postfix/main.cf": FileSpec(b"one\n")}
    managed.apply(desired, managed.plan(desired))
    manifest = tmp_path / MANIFEST
    written = manifest.stat()
    quiet = ManagedFiles(tmp_path)
    assert quiet.plan({}, set()) == []
    quiet.apply({}, [])
    assert "manifest" not in vars(quiet)  # never read
    assert manifest.stat().st_ino == written.st_ino  # nor written again
    assert ManagedFiles(tmp_path).manifest == {"postfix/main.cf": sha256(b"one\n")}


def test_each_pass_sees_the_manifest_as_it_is_on_disk_though_it_is_parsed_once(tmp_path):
    first = {"postfix/main.cf": FileSpec(b"one\n")}
    writer = ManagedFiles(tmp_path)
    writer.apply(first, writer.plan(first))
    reader = ManagedFiles(tmp_path)
    assert reader.manifest == {"postfix/main.cf": sha256(b"one\n")}
    reader.manifest["scratch"] = "a pass's own change, never saved"
    assert ManagedFiles(tmp_path).manifest == {"postfix/main.cf": sha256(b"one\n")}

    second = {"postfix/main.cf": FileSpec(b"two\n")}  # another writer replaces the file
    other = ManagedFiles(tmp_path)
    other.apply(second, other.plan(second))
    assert ManagedFiles(tmp_path).manifest == {"postfix/main.cf": sha256(b"two\n")}

    manifest = tmp_path / MANIFEST  # a hand edit in place, same inode
    manifest.write_text('{"postfix/main.cf": "edited by hand"}')
    assert ManagedFiles(tmp_path).manifest == {"postfix/main.cf": "edited by hand"}
    manifest.unlink()
    assert ManagedFiles(tmp_path).manifest == {}


def test_an_unchanged_manifest_is_parsed_once_per_process(tmp_path, monkeypatch):
    desired = {"postfix/main.cf": FileSpec(b"one\n")}
    writer = ManagedFiles(tmp_path)
    writer.apply(desired, writer.plan(desired))
    parses = []
    real_loads = apply_module.json.loads
    monkeypatch.setattr(apply_module.json, "loads",
                        lambda data: parses.append(1) or real_loads(data))
    for _ in range(3):
        assert ManagedFiles(tmp_path).manifest == {"postfix/main.cf": sha256(b"one\n")}
    assert len(parses) == 1
