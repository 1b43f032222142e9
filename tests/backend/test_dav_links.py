"""The per-mailbox links Radicale finds collections through (mailhost.backend.dav.sync_links)."""

import os
import uuid

import pytest

from mailhost.backend.dav import COLLECTION_ROOT, link_target, sync_links
from mailhost.backend.model import MailboxSnap

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
    sync_links(tmp_path, [snap("alice@a.test", home)], full=False, **IDS)
    assert links(tmp_path) == {"alice@a.test": f"../../../mail/{home}/dav"}
    home_dav = tmp_path / "mail" / home / "dav"
    assert (tmp_path / COLLECTION_ROOT / "alice@a.test").resolve() == home_dav


def test_a_rename_repoints_and_a_full_pass_drops_the_old_name(tmp_path):
    home = str(uuid.uuid4())
    sync_links(tmp_path, [snap("alice@a.test", home)], full=False, **IDS)
    sync_links(tmp_path, [snap("alicia@a.test", home)], full=False, **IDS)
    assert set(links(tmp_path)) == {"alice@a.test", "alicia@a.test"}
    sync_links(tmp_path, [snap("alicia@a.test", home)], full=True, **IDS)
    assert set(links(tmp_path)) == {"alicia@a.test"}


def test_a_deleted_mailbox_loses_its_link_but_not_a_new_owner_of_its_address(tmp_path):
    old, new = str(uuid.uuid4()), str(uuid.uuid4())
    sync_links(tmp_path, [snap("bob@a.test", old)], full=False, **IDS)
    sync_links(tmp_path, [snap("bob@a.test", new)], full=False, **IDS)
    sync_links(tmp_path, [snap("bob@a.test", old, deleted=True)], full=False, **IDS)
    assert links(tmp_path) == {"bob@a.test": link_target(new)}
    sync_links(tmp_path, [snap("bob@a.test", new, deleted=True)], full=False, **IDS)
    assert links(tmp_path) == {}


def test_collections_made_before_the_link_move_into_the_home(tmp_path):
    home = str(uuid.uuid4())
    early = tmp_path / COLLECTION_ROOT / "carol@a.test" / "calendar"
    early.mkdir(parents=True)
    (early / "event.ics").write_text("BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n")
    sync_links(tmp_path, [snap("carol@a.test", home)], full=True, **IDS)
    assert links(tmp_path) == {"carol@a.test": link_target(home)}
    assert (tmp_path / "mail" / home / "dav" / "calendar" / "event.ics").exists()
