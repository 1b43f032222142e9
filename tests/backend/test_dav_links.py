"""The per-mailbox links Radicale finds collections through (mailhost.backend.dav.sync_links)."""

import os
import uuid

import pytest

from mailhost.backend import lookup
from mailhost.backend.dav import COLLECTION_ROOT, link_target, sync_links, sync_links_from_store
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
    return {p.name: os.readlink(p) for p in root.iterdir() if p.is_symlink()}


def test_it_links_each_live_address_to_its_homes_dav_directory(tmp_path):
    home = str(uuid.uuid4())
    sync_links(tmp_path, [snap("alice@a.test", home)], **IDS)
    assert links(tmp_path) == {"alice@a.test": f"../../../mail/{home}/dav"}
    home_dav = tmp_path / "mail" / home / "dav"
    assert (tmp_path / COLLECTION_ROOT / "alice@a.test").resolve() == home_dav


def test_a_rename_repoints_and_a_full_pass_drops_the_old_name(tmp_path):
    home = str(uuid.uuid4())
    sync_links(tmp_path, [snap("alice@a.test", home)], **IDS)
    sync_links(tmp_path, [snap("alicia@a.test", home)], **IDS)
    assert set(links(tmp_path)) == {"alice@a.test", "alicia@a.test"}
    store = store_with(tmp_path, {"alicia@a.test": home})
    assert sync_links_from_store(tmp_path, store, **IDS) == 1
    assert links(tmp_path) == {"alicia@a.test": link_target(home)}


def test_the_full_pass_links_every_mailbox_of_the_store_and_drops_the_rest(tmp_path):
    homes = {f"user{n}@a.test": str(uuid.uuid4()) for n in range(3)}
    sync_links(tmp_path, [snap("gone@a.test", str(uuid.uuid4()))], **IDS)
    store = store_with(tmp_path, homes)
    assert sync_links_from_store(tmp_path, store, **IDS) == 4  # three made, one dropped
    assert links(tmp_path) == {address: link_target(home) for address, home in homes.items()}
    assert all((tmp_path / "mail" / home / "dav").is_dir() for home in homes.values())
    assert sync_links_from_store(tmp_path, store, **IDS) == 0  # nothing left to change


def store_with(state, homes: dict) -> "os.PathLike":
    """A lookup store whose mailboxes table holds `homes` ({address: home id}), as the
    reconciler renders them."""
    path = state / "lookup.sqlite"
    lookup.ensure_schema(path)
    conn = lookup.connect(path)
    with conn:
        conn.executemany(
            "INSERT INTO mailboxes (src, address, password, home, quota_bytes, can_login,"
            " can_receive) VALUES ('mailbox:1', ?, 'x', ?, 0, 1, 1)",
            [(address, mailbox_home(str(state), home)) for address, home in homes.items()])
    conn.close()
    return path


def test_a_deleted_mailbox_loses_its_link_but_not_a_new_owner_of_its_address(tmp_path):
    old, new = str(uuid.uuid4()), str(uuid.uuid4())
    sync_links(tmp_path, [snap("bob@a.test", old)], **IDS)
    sync_links(tmp_path, [snap("bob@a.test", new)], **IDS)
    sync_links(tmp_path, [snap("bob@a.test", old, deleted=True)], **IDS)
    assert links(tmp_path) == {"bob@a.test": link_target(new)}
    sync_links(tmp_path, [snap("bob@a.test", new, deleted=True)], **IDS)
    assert links(tmp_path) == {}


def test_collections_made_before_the_link_move_into_the_home(tmp_path):
    home = str(uuid.uuid4())
    early = tmp_path / COLLECTION_ROOT / "carol@a.test" / "calendar"
    early.mkdir(parents=True)
    (early / "event.ics").write_text("BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n")
    sync_links(tmp_path, [snap("carol@a.test", home)], **IDS)
    assert links(tmp_path) == {"carol@a.test": link_target(home)}
    assert (tmp_path / "mail" / home / "dav" / "calendar" / "event.ics").exists()
