"""A control plane of a test's own, to stop under a running mail node.

A throwaway PostgreSQL and Redis hold the portal's state; the operator commands (`manage.py`,
in subprocesses, as an operator runs them) provision and reconcile onto a real stack in a state
dir of the test's own; `ControlPlane.stop()` then shuts PostgreSQL and Redis down (no web
server or worker runs), so whatever the test checks next is the node working alone.
"""

import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
import redis

from mailhost.backend.config import PORT_NAMES, NodeConfig
from mailhost.backend.stack import Stack
from tests.stack import free_ports

AS_POSTGRES = ["su", "postgres", "-s", "/bin/sh", "-c"]


def _pg_bin() -> Path:
    return sorted(Path("/usr/lib/postgresql").glob("*/bin"))[-1]


@pytest.fixture
def throwaway_services():
    base = Path(tempfile.mkdtemp(prefix="mhcp", dir="/tmp"))
    pg_dir, pg_port, redis_port = base / "pg", *free_ports(2)
    pg_dir.mkdir()
    shutil.chown(base, "postgres")
    shutil.chown(pg_dir, "postgres")
    subprocess.run(
        [*AS_POSTGRES, f"{_pg_bin()}/initdb -D {pg_dir} --auth=trust -U postgres"],
        check=True, capture_output=True,
    )
    subprocess.run(
        [*AS_POSTGRES, f"{_pg_bin()}/pg_ctl -D {pg_dir} -w -l {pg_dir}/log "
                       f"-o '-p {pg_port} -k {pg_dir} -c listen_addresses=127.0.0.1' start"],
        check=True, capture_output=True,
    )
    subprocess.run(
        ["redis-server", "--daemonize", "yes", "--bind", "127.0.0.1", "--port", str(redis_port),
         "--save", "", "--pidfile", str(base / "redis.pid")],
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
            [*AS_POSTGRES, f"{_pg_bin()}/pg_ctl -D {pg_dir} -m immediate stop"],
            capture_output=True,
        )
        subprocess.run(
            ["redis-cli", "-p", str(redis_port), "shutdown", "nosave"], capture_output=True
        )
        shutil.rmtree(base, ignore_errors=True)


@dataclass
class ControlPlane:
    services: dict
    env: dict
    stack: Stack

    def manage(self, *args) -> str:
        result = subprocess.run(
            [sys.executable, "manage.py", *args], env=self.env, capture_output=True, text=True
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    def add_mailbox(self, address: str) -> str:
        """`manage.py addmailbox`; the generated password."""
        return self.manage("addmailbox", address).split("Password: ")[1].strip()

    def stop(self) -> None:
        """Shut PostgreSQL and Redis down, and check that neither answers any more."""
        subprocess.run(
            [*AS_POSTGRES, f"{_pg_bin()}/pg_ctl -D {self.services['pg_dir']} -m fast stop"],
            check=True, capture_output=True,
        )
        redis.Redis.from_url(self.services["redis_url"]).shutdown(nosave=True)
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(self.services["pg_url"], connect_timeout=2)
        with pytest.raises(redis.ConnectionError):
            redis.Redis.from_url(self.services["redis_url"]).ping()


@pytest.fixture
def control_plane(throwaway_services):
    """`control_plane(hostname=…, node=…, **env)`: a ControlPlane whose commands use the
    throwaway services, the node's ports and state dir, and `env` (MAILHOST_* settings);
    `node` overrides what the test's own Stack object is built with. Its stack is stopped
    and its state dir removed afterwards."""
    made: list[ControlPlane] = []

    def make(*, hostname: str = "mail.cp.test", node: dict | None = None, **env) -> ControlPlane:
        state_dir = Path(tempfile.mkdtemp(prefix="mh", dir="/tmp"))
        ports = dict(zip(PORT_NAMES, free_ports(len(PORT_NAMES)), strict=True))
        full_env = (
            os.environ
            | {
                "DATABASE_URL": throwaway_services["pg_url"],
                "CELERY_BROKER_URL": throwaway_services["redis_url"],
                "MAILHOST_VAR_DIR": str(throwaway_services["base"] / "var"),
                "MAILHOST_NODE_STATE_DIR": str(state_dir),
                "MAILHOST_HOSTNAME": hostname,
            }
            | {f"MAILHOST_{name.upper()}_PORT": str(port) for name, port in ports.items()}
            | {"MAILHOST_INTERNAL_SMTP_PORT": str(ports["internal"])}
            # Its own name too: without it the stack started by manage.py took Dovecot's
            # default stats port, and failed whenever another stack on the host held it.
            | {"MAILHOST_DOVECOT_STATS_PORT": str(ports["stats"])}
            | env
        )
        options = {"hostname": hostname, "bind_address": "127.0.0.1"} if node is None else node
        stack = Stack(NodeConfig.from_settings(state_dir=state_dir, ports=ports, **options))
        made.append(ControlPlane(throwaway_services, full_env, stack))
        return made[-1]

    try:
        yield make
    finally:
        for plane in made:
            plane.stack.stop()
            shutil.rmtree(plane.stack.cfg.state_dir, ignore_errors=True)
