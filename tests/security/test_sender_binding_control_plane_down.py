"""The From: rule holds with the whole control plane stopped.

Two organisations are provisioned with the operator commands against a throwaway PostgreSQL
and Redis of this test's own and reconciled onto a real stack started by `manage.py stack
start`; then PostgreSQL and Redis are shut down (no web server or worker runs). B's user still
cannot send as A's address with a null envelope sender, and may still send as his own.
"""

import os
import shutil
import smtplib
import subprocess
import sys
import tempfile
from pathlib import Path

import psycopg
import pytest
import redis

from mailhost.backend.config import PORT_NAMES, NodeConfig
from mailhost.backend.stack import Stack
from tests.reconcile.test_control_plane_down import (
    _pg_bin,
    throwaway_services,  # noqa: F401 (fixture)
)
from tests.security.two_tenants import signing_domains
from tests.stack import fetch_inbox_raw, free_ports, make_message, smtp_send, wait_for

pytestmark = pytest.mark.stack


def test_it_refuses_another_tenants_from_with_database_redis_and_worker_stopped(
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
            "MAILHOST_HOSTNAME": "mail.cp.test",
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

    stack = Stack(NodeConfig.from_settings(
        state_dir=state_dir, ports=ports, hostname="mail.cp.test", bind_address="127.0.0.1"
    ))
    try:
        manage("migrate", "-v0")
        manage("createorg", "victim", "--name", "Victim")
        manage("createorg", "attacker", "--name", "Attacker")
        manage("adddomain", "victim.test", "--org", "victim")
        manage("adddomain", "attacker.test", "--org", "attacker")
        manage("addmailbox", "alice@victim.test")
        bob_password = manage("addmailbox", "bob@attacker.test").split("Password: ")[1].strip()
        manage("stack", "start")
        manage("reconcile")

        subprocess.run(
            ["su", "postgres", "-s", "/bin/sh", "-c",
             f"{_pg_bin()}/pg_ctl -D {throwaway_services['pg_dir']} -m fast stop"],
            check=True, capture_output=True,
        )
        redis.Redis.from_url(throwaway_services["redis_url"]).shutdown(nosave=True)
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(throwaway_services["pg_url"], connect_timeout=2)
        with pytest.raises(redis.ConnectionError):
            redis.Redis.from_url(throwaway_services["redis_url"]).ping()

        bob = ("bob@attacker.test", bob_password)
        forged = make_message("alice@victim.test", "bob@attacker.test", "forged while down")
        with pytest.raises(smtplib.SMTPDataError) as excinfo:
            smtp_send(stack, "submission", "", "bob@attacker.test", forged, login=bob)
        assert excinfo.value.smtp_code == 550
        assert excinfo.value.smtp_error.startswith(b"5.7.1")

        own = make_message("bob@attacker.test", "bob@attacker.test", "own while down")
        smtp_send(stack, "submission", "", "bob@attacker.test", own, login=bob)
        (raw,) = wait_for(lambda: [m for m in fetch_inbox_raw(stack, *bob) if b"while down" in m])
        assert b"own while down" in raw
        assert "victim.test" not in signing_domains(raw)
    finally:
        stack.stop()
        shutil.rmtree(state_dir, ignore_errors=True)
