"""Role addresses (postmaster@, abuse@) as Postfix itself resolves them from the lookup store:
the rendered alias map queried with `postmap -q`, the tool that uses Postfix's own sqlite
client. No daemon needed."""

import dataclasses
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from mailhost.backend import lookup
from mailhost.backend.apply import RowDiff, write_rows
from mailhost.backend.config import render_postfix_sqlite_maps
from mailhost.backend.model import DomainSnap
from mailhost.backend.render import UnsafeValue, role_rows
from tests.stack import stack_config

pytestmark = pytest.mark.skipif(not shutil.which("postmap"), reason="postfix missing")

OPERATOR = "desk@operator.test"


def test_it_renders_both_role_addresses_of_a_live_domain_only():
    domain = DomainSnap(id=3, name="acme.test", active=True, role_target="boss@acme.test")
    assert role_rows(domain)["role_routes"] == {
        ("roles:3", "abuse@acme.test", "boss@acme.test"),
        ("roles:3", "postmaster@acme.test", "boss@acme.test"),
    }
    assert not any(role_rows(dataclasses.replace(domain, active=False)).values())
    assert not any(role_rows(dataclasses.replace(domain, verified=False)).values())
    with pytest.raises(UnsafeValue):
        role_rows(dataclasses.replace(domain, role_target="x'; DROP@acme.test"))


def test_it_refuses_an_operator_mailbox_that_would_break_the_query():
    for hostile in ("x'y@operator.test", "a%s@operator.test", "a b@operator.test", "nobody"):
        with pytest.raises(ValueError, match="operator_mailbox"):
            stack_config(Path("/tmp/mh-role"), operator_mailbox=hostile)


@pytest.fixture
def store():
    """A lookup store and the alias map rendered for it, with OPERATOR as the fallback."""
    state = Path(tempfile.mkdtemp(prefix="mhrole", dir="/tmp"))
    try:
        cfg = stack_config(state, operator_mailbox=OPERATOR)
        (state / "postfix").mkdir()
        for relative, text in render_postfix_sqlite_maps(cfg).items():
            (state / relative).write_text(text)
        (state / "postfix" / "main.cf").write_text("compatibility_level = 3.6\n")
        lookup.ensure_schema(cfg.lookup_db)
        yield cfg
    finally:
        shutil.rmtree(state, ignore_errors=True)


def add(cfg, **tables: set[tuple]) -> None:
    conn = lookup.connect(cfg.lookup_db)
    try:
        write_rows(conn, RowDiff(added=tables))
    finally:
        conn.close()


def resolve(cfg, address: str) -> str | None:
    """Where Postfix's virtual alias map sends `address` (None: not found)."""
    result = subprocess.run(
        ["postmap", "-c", str(cfg.path("postfix")), "-q", address,
         f"sqlite:{cfg.path('postfix/sqlite-aliases.cf')}"],
        capture_output=True, text=True,
    )
    return result.stdout.strip() if result.returncode == 0 else None


def mailbox(address: str, can_receive: int = 1) -> tuple:
    return ("mailbox:1", address, "{BLF-CRYPT}x", "/h", 0, 1, can_receive)


def test_it_sends_role_mail_to_the_target_while_it_receives(store):
    add(store, role_routes={("roles:1", "postmaster@acme.test", "boss@acme.test")},
        mailboxes={mailbox("boss@acme.test")})
    assert resolve(store, "postmaster@acme.test") == "boss@acme.test"


def test_it_falls_back_to_the_operator_mailbox_when_the_target_cannot_receive(store):
    add(store, role_routes={("roles:1", "postmaster@acme.test", "gone@acme.test"),
                            ("roles:1", "abuse@acme.test", "off@acme.test"),
                            ("roles:2", "abuse@b.test", "")},
        mailboxes={mailbox("off@acme.test", can_receive=0)})
    assert resolve(store, "postmaster@acme.test") == OPERATOR  # deleted target
    assert resolve(store, "abuse@acme.test") == OPERATOR  # disabled target
    assert resolve(store, "abuse@b.test") == OPERATOR  # no target at all


def test_it_lets_a_mailbox_or_alias_of_the_same_address_win(store):
    add(store, role_routes={("roles:1", "postmaster@acme.test", "boss@acme.test"),
                            ("roles:1", "abuse@acme.test", "boss@acme.test")},
        mailboxes={mailbox("boss@acme.test"), mailbox("postmaster@acme.test")},
        aliases={("alias:1", "abuse@acme.test", "desk@elsewhere.test")})
    assert resolve(store, "postmaster@acme.test") == "postmaster@acme.test"
    assert resolve(store, "abuse@acme.test") == "desk@elsewhere.test"


def test_it_never_routes_the_operator_mailbox_to_itself(store):
    add(store, role_routes={("roles:9", OPERATOR, "")})
    assert resolve(store, OPERATOR) is None  # no loop: an unknown address, refused


def test_it_resolves_nothing_else(store):
    add(store, role_routes={("roles:1", "postmaster@acme.test", "boss@acme.test")})
    assert resolve(store, "sales@acme.test") is None
    assert resolve(store, "@acme.test") is None
