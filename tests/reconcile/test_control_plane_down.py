"""Once applied, mail keeps flowing with the whole control plane stopped.

A throwaway PostgreSQL and Redis of this test's own hold the portal's state; the operator
commands provision a mailbox and reconcile it onto a real stack; then PostgreSQL and Redis are
shut down (no web server or worker runs) and an external sender's mail is still delivered and
IMAP login still works.
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
from tests.stack import fetch_inbox, free_ports, imap_login, make_message, smtp_send

pytestmark = pytest.mark.stack


def _pg_bin() -> Path:
    return sorted(Path("/usr/lib/postgresql").glob("*/bin"))[-1]


@pytest.fixture
def throwaway_services():
    base = Path(tempfile.mkdtemp(prefix="mhcp", dir="/tmp"))
    pg_dir, pg_port, redis_port = base / "pg", *free_ports(2)
    pg_dir.mkdir()
    shutil.chown(base, "postgres")
    shutil.chown(pg_dir, "postgres")
    as_postgres = ["su", "postgres", "-s", "/bin/sh", "-c"]
    subprocess.run(
        [*as_postgres, f"{_pg_bin()}/initdb -D {pg_dir} --auth=trust -U postgres"],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [
            *as_postgres,
            f"{_pg_bin()}/pg_ctl -D {pg_dir} -w -l {pg_dir}/log "
            f"-o '-p {pg_port} -k {pg_dir} -c listen_addresses=127.0.0.1' start",
        ],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [
            "redis-server",
            "--daemonize",
            "yes",
            "--bind",
            "127.0.0.1",
            "--port",
            str(redis_port),
            "--save",
            "",
            "--pidfile",
            str(base / "redis.pid"),
        ],
        check=True,
    )
    services = {
        "base": base,
        "pg_url": f"postgres://postgres@127.0.0.1:{pg_port}/postgres",
        "redis_url": f"redis://127.0.0.1:{redis_port}/0",
        "pg_dir": pg_dir,
    }
    try:
        yield services
    finally:
        subprocess.run(
            [*as_postgres, f"{_pg_bin()}/pg_ctl -D {pg_dir} -m immediate stop"], capture_output=True
        )
        subprocess.run(
            ["redis-cli", "-p", str(redis_port), "shutdown", "nosave"], capture_output=True
        )
        shutil.rmtree(base, ignore_errors=True)


def test_it_delivers_and_serves_imap_with_database_redis_and_worker_stopped(throwaway_services):
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
            # acme has no admin with a mailbox here: its postmaster@ goes to the operator's.
            "MAILHOST_OPERATOR_MAILBOX": "alice@acme.test",
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

    stack = Stack(
        NodeConfig.from_settings(
            state_dir=state_dir, ports=ports, hostname="mail.cp.test", bind_address="127.0.0.1"
        )
    )
    try:
        manage("migrate", "-v0")
        manage("createorg", "acme", "--name", "Acme")
        manage("adddomain", "acme.test", "--org", "acme")
        password = manage("addmailbox", "alice@acme.test").split("Password: ")[1].strip()
        manage("stack", "start")
        manage("reconcile")

        subprocess.run(
            [
                "su",
                "postgres",
                "-s",
                "/bin/sh",
                "-c",
                f"{_pg_bin()}/pg_ctl -D {throwaway_services['pg_dir']} -m fast stop",
            ],
            check=True,
            capture_output=True,
        )
        redis.Redis.from_url(throwaway_services["redis_url"]).shutdown(nosave=True)
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(throwaway_services["pg_url"], connect_timeout=2)
        with pytest.raises(redis.ConnectionError):
            redis.Redis.from_url(throwaway_services["redis_url"]).ping()

        smtp_send(
            stack,
            "smtp",
            "friend@outside.example",
            "alice@acme.test",
            make_message("friend@outside.example", "alice@acme.test", "still flowing"),
        )
        smtp_send(
            stack,
            "smtp",
            "reports@outside.example",
            "postmaster@acme.test",
            make_message("reports@outside.example", "postmaster@acme.test", "role routed"),
        )
        assert imap_login(stack, "alice@acme.test", password)
        from tests.stack import wait_for

        def subjects():
            messages = fetch_inbox(stack, "alice@acme.test", password)
            return sorted(m["Subject"] for m in messages) if len(messages) == 2 else None

        assert wait_for(subjects, timeout=10) == ["role routed", "still flowing"]
    finally:
        stack.stop()
        shutil.rmtree(state_dir, ignore_errors=True)
