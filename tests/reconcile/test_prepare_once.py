"""The state dir's set-up (`Stack.prepare`: directories, owners, the stores' schemas) runs on
every full pass, but on an incremental pass only when this process has not prepared that state
dir with that config yet, or when a pass on it failed since."""

import shutil
import tempfile
from pathlib import Path

import pytest

from mailhost.backend.config import NodeConfig
from nodes import reconcile
from nodes.models import MailNode


class CountingStack:
    def __init__(self):
        self.prepared = 0

    def prepare(self):
        self.prepared += 1


@pytest.fixture(autouse=True)
def fresh_memory(monkeypatch):
    monkeypatch.setattr(reconcile, "_prepared", set())


@pytest.fixture
def tmp_path():
    """A short directory (a state dir's path is limited by Dovecot's unix sockets)."""
    path = Path(tempfile.mkdtemp(prefix="mhp", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_an_incremental_pass_prepares_a_state_dir_once_and_a_full_pass_always(tmp_path):
    config = NodeConfig.from_settings(state_dir=tmp_path / "node")
    config.state_dir.mkdir()
    stack = CountingStack()
    reconcile._prepare(stack, config, full=False)
    mark = (config.state_dir / reconcile.PREPARED_MARK).read_text()
    reconcile._prepare(stack, config, full=False)
    assert stack.prepared == 1
    # Another worker process (its own memory) prepares once too, and keeps the mark.
    reconcile._prepared.clear()
    reconcile._prepare(stack, config, full=False)
    reconcile._prepare(stack, config, full=False)
    assert stack.prepared == 2
    assert (config.state_dir / reconcile.PREPARED_MARK).read_text() == mark
    assert sorted(p.name for p in config.state_dir.iterdir()) == [reconcile.PREPARED_MARK]
    reconcile._prepare(stack, config, full=True)
    reconcile._prepare(stack, config, full=True)
    assert stack.prepared == 4
    reconcile._prepare(stack, config, full=False)
    assert stack.prepared == 4


def test_a_new_state_dir_or_another_config_is_prepared_again(tmp_path):
    config = NodeConfig.from_settings(state_dir=tmp_path / "node")
    config.state_dir.mkdir()
    stack = CountingStack()
    reconcile._prepare(stack, config, full=False)
    # The state dir removed and made again (a node emptied by hand): prepared again.
    shutil.rmtree(config.state_dir)
    config.state_dir.mkdir()
    reconcile._prepare(stack, config, full=False)
    assert stack.prepared == 2
    other = NodeConfig.from_settings(state_dir=config.state_dir, hostname="other.example")
    reconcile._prepare(stack, other, full=False)
    assert stack.prepared == 3


@pytest.mark.django_db
def test_an_incremental_pass_that_failed_prepares_again_on_its_retry(tmp_path, monkeypatch):
    state_dir = tmp_path / "node"
    node = MailNode.objects.create(name="prep", state_dir=str(state_dir), desired_revision=1)
    config = NodeConfig.from_settings(state_dir=state_dir)
    state_dir.mkdir()
    reconcile._prepare(CountingStack(), config, full=True)
    assert reconcile._prepare_key(config) in reconcile._prepared

    def broken(*args, **kwargs):
        raise OSError("a directory the pass writes into is gone")

    monkeypatch.setattr(reconcile, "plan_incremental", broken)
    with pytest.raises(OSError):
        reconcile.reconcile_incremental(node, config)
    assert reconcile._prepare_key(config) not in reconcile._prepared
    node.refresh_from_db()
    assert "is gone" in node.last_error
