"""A mail stack of its own for the ban attack tests, with thresholds small enough to reach.

Kept out of conftest.py (other attack suites share this folder): test modules import the
fixtures they use. The stack's thresholds come from the same MAILHOST_BAN_* settings an
operator sets; `ban_node` points the portal at this stack's state directory, so the portal's
logins and the mail services share one ban store, as on a single box.
"""

import dataclasses
import shutil

import pytest

from mailhost.backend.bans import BanPolicy, BanStore
from mailhost.backend.config import ban_policy_from_settings
from mailhost.backend.stack import Stack
from tests.backend.test_stack import PASSWORD, add_domain, add_mailbox
from tests.stack import make_state_dir, stack_config, unique_domain

# Small on purpose: three failed logins within ten minutes ban an address for ten minutes;
# six failures on one account from anywhere throttle that account.
TEST_BAN_SETTINGS = {
    "MAILHOST_BAN_FAILURES": 3,
    "MAILHOST_BAN_WINDOW_SECONDS": 600,
    "MAILHOST_BAN_SECONDS": 600,
    "MAILHOST_BAN_ACCOUNT_FAILURES": 6,
    "MAILHOST_BAN_ACCOUNT_DELAY_SECONDS": 1,
    "MAILHOST_BAN_EXEMPT_NETWORKS": [],
}


class _Settings:
    def __init__(self, values: dict):
        self.__dict__.update(values)


def policy(**changes) -> BanPolicy:
    return ban_policy_from_settings(_Settings(TEST_BAN_SETTINGS | changes))


@pytest.fixture(scope="module")
def ban_stack():
    stack = Stack(stack_config(make_state_dir(), bans=policy()))
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()
        shutil.rmtree(stack.cfg.state_dir, ignore_errors=True)


@pytest.fixture
def ban_node(ban_stack, settings, db):
    """The portal's settings and default MailNode pointed at `ban_stack`, same thresholds."""
    from nodes.changes import node_default

    for name, value in TEST_BAN_SETTINGS.items():
        setattr(settings, name, value)
    settings.MAILHOST_STACK_DEV = True
    settings.MAILHOST_NODE_STATE_DIR = ban_stack.cfg.state_dir
    settings.MAILHOST_PORTS = dict(ban_stack.cfg.ports)
    settings.MAILHOST_HOSTNAME = ban_stack.cfg.hostname
    settings.MAILHOST_BIND_ADDRESS = ban_stack.cfg.bind_address
    node = node_default()
    if node.state_dir != str(ban_stack.cfg.state_dir):
        node.state_dir = str(ban_stack.cfg.state_dir)
        node.save(update_fields=["state_dir"])
    return ban_stack


def set_policy(stack: Stack, settings, **changes) -> None:
    """Change the thresholds as an operator would (settings → rendered config); the policy
    server picks the changed file up at its next request."""
    for name, value in changes.items():
        setattr(settings, name, value)
    values = {k: getattr(settings, k) for k in TEST_BAN_SETTINGS}
    stack.cfg = dataclasses.replace(stack.cfg, bans=ban_policy_from_settings(_Settings(values)))
    stack.write_config()


def victim(stack: Stack, domain: str | None = None) -> str:
    """A mailbox on the stack (rows written straight into the node's lookup store)."""
    domain = domain or unique_domain("ban")
    add_domain(stack, domain)
    address = f"victim@{domain}"
    add_mailbox(stack, address)
    return address


def store(stack: Stack) -> BanStore:
    return BanStore(stack.cfg.bans_db, stack.cfg.ban_policy)


__all__ = ["PASSWORD", "ban_node", "ban_stack", "policy", "set_policy", "store", "victim"]
