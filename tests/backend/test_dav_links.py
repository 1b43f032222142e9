"""The per-mailbox links Radicale finds collections through (mailhost.backend.dav): made on a
mailbox's first DAV request (`ensure_principal`), only ever taken away by the reconcile passes
(`sync_links`, `sync_links_from_store`)."""

import os
import stat
import uuid

import pytest

from mailhost.backend import lookup
from mailhost.backend.dav import (
    COLLECTION_ROOT,
    ensure_principal,
    link_target,
    sync_links,
    sync_links_from_store,
)
from mailhost.backend.dav_auth import state_dir_of
from mailhost.backend.model import MailboxSnap
from mailhost.backend.render import mailbox_home

IDS = dict(uid=os.getuid(), gid=os.getgid())


@pytest.fixture(autouse=True)
def mail_root(tmp_path):
    (tmp_path / "mail").mkdir()  # the stack runner's prepare() makes it


def snap(address: str, home: str, *, deleted: bool = False) -> MailboxSnap:
    return MailboxSnap(id=1, address=address, password_hash="{BLF-CRYPT}x", home_id=home,
                       quota_mb=0, status="active", domain_active=True, deleted=deleted)


def links(state) -> dict:
    root = state / COLLECTION_ROOT
    if not root.exists():
        return {}
    return {p.name: os.readlink(p) for p in root.iterdir() if p.is_symlink()}


def store_with(state, homes: dict) -> "os.PathLike":
    """A lookup store whose mailboxes table holds `homes` ({address: home id}), as the
    reconciler renders them (replacing what it held)."""
    path = state / "lookup.sqlite"
    lookup.ensure_schema(path)
    conn = lookup.connect(path)
    with conn:
        conn.execute("DELETE FROM mailboxes")
        conn.executemany(
            "INSERT INTO mailboxes (src, address, password, home, quota_bytes, can_login,"
            " can_receive) VALUES ('mailbox:1', ?, 'x', ?, 0, 1, 1)",
            [(address, mailbox_home(str(state), home)) for address, home in homes.items()])
    conn.close()
    return path


def test_the_first_request_makes_the_home_its_dav_directory_and_the_link(tmp_path):
    home = str(uuid.uuid4())
    store = store_with(tmp_path, {"alice@a.test": home})
    assert not (tmp_path / "mail" / home).exists()

    assert ensure_principal(tmp_path, store, "alice@a.test", **IDS)

    assert links(tmp_path) == {"alice@a.test": f"../../../mail/{home}/dav"}
    home_dav = tmp_path / "mail" / home / "dav"
    assert (tmp_path / COLLECTION_ROOT / "alice@a.test").resolve() == home_dav
    for directory in (home_dav.parent, home_dav):
        info = directory.stat()
        assert stat.S_IMODE(info.st_mode) == 0o700
        assert (info.st_uid, info.st_gid) == (IDS["uid"], IDS["gid"])
    (home_dav / "calendar").mkdir()
    assert ensure_principal(tmp_path, store, "alice@a.test", **IDS)  # the next: nothing new
    assert links(tmp_path) == {"alice@a.test": link_target(home)}
    assert list(home_dav.iterdir()) == [home_dav / "calendar"]


def test_an_address_the_store_does_not_know_gets_nothing(tmp_path):
    store = store_with(tmp_path, {"alice@a.test": str(uuid.uuid4())})
    assert not ensure_principal(tmp_path, store, "mallory@a.test", **IDS)
    assert not ensure_principal(tmp_path, store, "../alice@a.test", **IDS)
    assert links(tmp_path) == {}
    assert list((tmp_path / "mail").iterdir()) == []


def test_no_pass_makes_a_home_or_a_link(tmp_path):
    homes = {f"user{n}@a.test": str(uuid.uuid4()) for n in range(3)}
    sync_links(tmp_path, [snap(address, home) for address, home in homes.items()])
    store = store_with(tmp_path, homes)
    assert sync_links_from_store(tmp_path, store) == 0  # no collection-root/ yet: nothing
    assert list((tmp_path / "mail").iterdir()) == []
    assert not (tmp_path / COLLECTION_ROOT).exists()


def test_a_rename_gets_a_new_link_on_use_and_a_full_pass_drops_the_old_name(tmp_path):
    home = str(uuid.uuid4())
    ensure_principal(tmp_path, store_with(tmp_path, {"alice@a.test": home}), "alice@a.test",
                     **IDS)
    store = store_with(tmp_path, {"alicia@a.test": home})
    sync_links(tmp_path, [snap("alicia@a.test", home)])
    ensure_principal(tmp_path, store, "alicia@a.test", **IDS)
    assert set(links(tmp_path)) == {"alice@a.test", "alicia@a.test"}

    assert sync_links_from_store(tmp_path, store) == 1
    assert links(tmp_path) == {"alicia@a.test": link_target(home)}
    assert sync_links_from_store(tmp_path, store) == 0  # nothing left to change


def test_the_full_pass_drops_links_to_another_home_and_of_gone_addresses(tmp_path):
    old, new, kept = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
    before = store_with(tmp_path, {"bob@a.test": old, "gone@a.test": str(uuid.uuid4()),
                                   "kept@a.test": kept})
    for address in ("bob@a.test", "gone@a.test", "kept@a.test"):
        ensure_principal(tmp_path, before, address, **IDS)
    store = store_with(tmp_path, {"bob@a.test": new, "kept@a.test": kept})

    assert sync_links_from_store(tmp_path, store) == 2
    assert links(tmp_path) == {"kept@a.test": link_target(kept)}
    ensure_principal(tmp_path, store, "bob@a.test", **IDS)  # bob's next request
    assert links(tmp_path) == {"bob@a.test": link_target(new), "kept@a.test": link_target(kept)}


def test_a_deleted_mailbox_loses_its_link_but_not_a_new_owner_of_its_address(tmp_path):
    old, new = str(uuid.uuid4()), str(uuid.uuid4())
    ensure_principal(tmp_path, store_with(tmp_path, {"bob@a.test": old}), "bob@a.test", **IDS)
    sync_links(tmp_path, [snap("bob@a.test", new)])  # the address is another mailbox's now
    assert links(tmp_path) == {}
    ensure_principal(tmp_path, store_with(tmp_path, {"bob@a.test": new}), "bob@a.test", **IDS)
    sync_links(tmp_path, [snap("bob@a.test", old, deleted=True)])
    assert links(tmp_path) == {"bob@a.test": link_target(new)}
    sync_links(tmp_path, [snap("bob@a.test", new, deleted=True)])
    assert links(tmp_path) == {}


def test_collections_made_before_the_link_move_into_the_home(tmp_path):
    home = str(uuid.uuid4())
    early = tmp_path / COLLECTION_ROOT / "carol@a.test" / "calendar"
    early.mkdir(parents=True)
    (early / "event.ics").write_text("BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n")
    ensure_principal(tmp_path, store_with(tmp_path, {"carol@a.test": home}), "carol@a.test",
                     **IDS)
    assert links(tmp_path) == {"carol@a.test": link_target(home)}
    assert (tmp_path / "mail" / home / "dav" / "calendar" / "event.ics").exists()


def test_the_auth_plugin_finds_the_state_dir_from_radicales_storage_folder():
    assert str(state_dir_of("/var/lib/mailhost/dav/collections")) == "/var/lib/mailhost"
    with pytest.raises(RuntimeError):
        state_dir_of("/var/lib/radicale/collections")
