"""Bans hold on the node with the portal, worker, central database and Redis all stopped.

As in tests/reconcile/test_control_plane_down.py: a throwaway PostgreSQL and Redis hold the
portal's state, the operator commands provision a mailbox and start the node with its
production thresholds lowered through the same MAILHOST_BAN_* settings an operator sets, then
PostgreSQL and Redis are shut down and nothing of the control plane runs. The attacker then
guesses the password over IMAP from 127.0.0.9.
"""

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import psycopg
import pytest
import redis

from mailhost.backend.config import PORT_NAMES, NodeConfig
from mailhost.backend.stack import Stack
from tests.reconcile.test_control_plane_down import (  # noqa: F401  (fixture)
    _pg_bin,
    throwaway_services,
)
from tests.security.attack import imap_login, sieve_login, smtp_auth, smtp_greeting
from tests.stack import free_ports

pytestmark = pytest.mark.stack


def test_it_bans_a_guessing_address_on_every_mail_service_with_the_control_plane_down(
    throwaway_services,  # noqa: F811
):
    state_dir = Path(tempfile.mkdtemp(prefix="mh", dir="/tmp"))
    ports = dict(zip(PORT_NAMES, free_ports(len(PORT_NAMES)), strict=True))
    env = (
        os.environ
        | {
            "DATABASE_URL": throwaway_services["pg_url"],
            "CELERY_BROKER_URL": throwaway_services["redis_url"],
            "MAILHOST_VAR_DIR": str(throwaway_services["base"] / "var"),
            "MAILHOST_NODE_STATE_DIR": str(state_dir),
            "MAILHOST_HOSTNAME": "mail.bans.test",
            "MAILHOST_STACK_DEV": "true",  # relaxes 127.0.0.1 only; the attacker is 127.0.0.9
            "MAILHOST_BAN_FAILURES": "4",
        }
        | {f"MAILHOST_{name.upper()}_PORT": str(port) for name, port in ports.items()}
    )
    env["MAILHOST_INTERNAL_SMTP_PORT"] = str(ports["internal"])

    def manage(*args) -> str:
        result = subprocess.run(
            [sys.executable, "manage.py", *args], env=env, capture_output=True, text=True
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    stack = Stack(NodeConfig.from_settings(state_dir=state_dir, ports=ports, dev=True))
    try:
        manage("migrate", "-v0")
        manage("createorg", "acme", "--name", "Acme")
        manage("adddomain", "acme.test", "--org", "acme")
        password = manage("addmailbox", "alice@acme.test").split("Password: ")[1].strip()
        manage("stack", "start")
        manage("reconcile")
        _stop_control_plane(throwaway_services)

        attacker, bystander, alice = "127.0.0.9", "127.0.0.10", "alice@acme.test"
        for guess in ("123456", "password", "alice2024", "letmein"):
            assert not imap_login(stack, attacker, alice, guess)

        assert not imap_login(stack, attacker, alice, password)
        assert not smtp_auth(stack, attacker, "submission", alice, password)
        assert not smtp_auth(stack, attacker, "submissions", alice, password)
        assert not sieve_login(stack, attacker, alice, password)
        assert smtp_greeting(stack, attacker).startswith(b"421 4.7.0")

        assert imap_login(stack, bystander, alice, password)
        assert smtp_auth(stack, bystander, "submission", alice, password)
        assert smtp_greeting(stack, bystander).startswith(b"220 ")
    finally:
        stack.stop()
        shutil.rmtree(state_dir, ignore_errors=True)


def _stop_control_plane(services: dict) -> None:
    subprocess.run(
        ["su", "postgres", "-s", "/bin/sh", "-c",
         f"{_pg_bin()}/pg_ctl -D {services['pg_dir']} -m fast stop"],
        check=True, capture_output=True,
    )
    redis.Redis.from_url(services["redis_url"]).shutdown(nosave=True)
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(services["pg_url"], connect_timeout=2)
    with pytest.raises(redis.ConnectionError):
        redis.Redis.from_url(services["redis_url"]).ping()
