"""A fresh Debian 12 machine: scripts/ensure-services.sh must work there or fail loudly.

Nothing here relies on the PostgreSQL and Redis this machine happens to run: the "already
running" checks are pointed at closed ports or at servers these tests start themselves — a
scram-sha-256-only PostgreSQL like Debian's default, which answers no passwordless client —
and the checkout is in a mode-700 directory like a clone in /root. Each run is bounded.
"""

import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import psycopg
import pytest

from tests.stack import free_ports

pytestmark = [
    pytest.mark.fresh_machine,
    pytest.mark.skipif(os.geteuid() != 0, reason="starts servers as the postgres user (root)"),
]

ROOT = Path(__file__).resolve().parents[2]
BINDIR = sorted(Path("/usr/lib/postgresql").glob("*/bin"))[-1]
POSTGRES_HOME = Path("/var/lib/postgresql")


def as_postgres(command: str) -> None:
    subprocess.run(["su", "postgres", "-s", "/bin/sh", "-c", command], check=True,
                   stdin=subprocess.DEVNULL, capture_output=True, timeout=60)


def stop_cluster(data_dir: Path) -> None:
    if (data_dir / "postmaster.pid").exists():
        as_postgres(f"'{BINDIR}/pg_ctl' -D '{data_dir}' -m immediate -w stop")


@pytest.fixture
def scram_only_postgres():
    """A PostgreSQL that refuses every connection without a password (scram-sha-256)."""
    base = Path(tempfile.mkdtemp(prefix="mh-scram-", dir="/var/tmp"))
    shutil.chown(base, "postgres", "postgres")
    data, port = base / "data", free_ports(1)[0]
    (base / "pw").write_text("a password nobody types\n")
    shutil.chown(base / "pw", "postgres", "postgres")
    as_postgres(f"'{BINDIR}/initdb' -D '{data}' -U postgres --auth=scram-sha-256 "
                f"--pwfile='{base}/pw'")
    as_postgres(f"'{BINDIR}/pg_ctl' -D '{data}' -l '{base}/log' -w -o "
                f"'-p {port} -k {base} -c listen_addresses=127.0.0.1' start")
    try:
        yield f"postgres://postgres@127.0.0.1:{port}"
    finally:
        stop_cluster(data)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def checkout():
    """A copy of the scripts in a mode-700 directory (a clone in /root), with its own var/."""
    base = Path(tempfile.mkdtemp(prefix="mh-700-"))  # mode 700, owned by root
    assert base.stat().st_mode & 0o777 == 0o700
    (base / "scripts").mkdir()
    shutil.copy2(ROOT / "scripts" / "ensure-services.sh", base / "scripts")
    started_pg: list[Path] = []
    try:
        yield base, started_pg
    finally:
        pid_file = base / "var" / "run" / "redis.pid"
        if pid_file.exists():
            os.kill(int(pid_file.read_text()), signal.SIGTERM)
        for data_dir in started_pg:
            stop_cluster(data_dir)
            shutil.rmtree(data_dir, ignore_errors=True)
        shutil.rmtree(base, ignore_errors=True)


def ensure(checkout: Path, env: dict, *services: str) -> tuple[int, str]:
    """Runs ensure-services.sh on a terminal of its own (as `make test` typed by a person):
    a password prompt would wait there for ever, so the run is bounded and must end alone."""
    command = " ".join(["scripts/ensure-services.sh", *services])
    environ = {k: v for k, v in os.environ.items() if k not in ("TEST_DATABASE_URL",)} | env
    done = subprocess.run(
        ["script", "-qec", command, "/dev/null"], cwd=checkout, env=environ,
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120,
    )
    return done.returncode, done.stdout.replace("\r", "")


def exported(output: str) -> dict:
    lines = [line.removeprefix("export ") for line in output.splitlines()]
    return dict(line.split("=", 1) for line in lines if line.startswith(("DATABASE", "CELERY")))


def test_it_falls_back_without_prompting_from_a_scram_only_server_in_a_mode_700_checkout(
    scram_only_postgres, checkout
):
    path, started = checkout
    pg_port, redis_port, closed = free_ports(3)
    started.append(POSTGRES_HOME / f"mailhost-{pg_port}")  # where the script says it goes
    env = {
        "MAILHOST_PG_URL": scram_only_postgres,
        "MAILHOST_PG_FALLBACK_PORT": str(pg_port),
        "MAILHOST_REDIS_PORT": str(closed),
        "MAILHOST_REDIS_FALLBACK_PORT": str(redis_port),
    }

    status, output = ensure(path, env, "postgres", "redis")

    assert status == 0, output
    assert "password" not in output.lower()
    assert exported(output) == {
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:{pg_port}/mailhost",
        "CELERY_BROKER_URL": f"redis://127.0.0.1:{redis_port}/0",
    }
    with psycopg.connect(f"postgresql://postgres@127.0.0.1:{pg_port}/postgres") as conn:
        assert conn.execute("select 1").fetchone() == (1,)
    assert (POSTGRES_HOME / f"mailhost-{pg_port}" / "PG_VERSION").exists()

    # Already running: the next run finds both and starts nothing.
    status, again = ensure(path, env, "postgres", "redis")
    assert status == 0 and exported(again) == exported(output)
    assert "starting" not in again


def test_it_uses_a_server_that_answers_without_a_password(checkout, scram_only_postgres):
    path, started = checkout
    trusted_port, unused = free_ports(2)
    started.append(POSTGRES_HOME / f"mailhost-{trusted_port}")
    first = {"MAILHOST_PG_URL": scram_only_postgres,
             "MAILHOST_PG_FALLBACK_PORT": str(trusted_port)}
    assert ensure(path, first, "postgres")[0] == 0  # now a passwordless server runs there

    env = {"MAILHOST_PG_URL": f"postgres://postgres@127.0.0.1:{trusted_port}",
           "MAILHOST_PG_FALLBACK_PORT": str(unused)}
    status, output = ensure(path, env, "postgres")

    assert status == 0, output
    assert exported(output) == {
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:{trusted_port}/mailhost"
    }
    assert "starting" not in output
    assert not (POSTGRES_HOME / f"mailhost-{unused}").exists()


def test_it_stops_make_test_when_no_database_can_be_had():
    closed, port = free_ports(2)
    env = {k: v for k, v in os.environ.items() if k not in ("TEST_DATABASE_URL", "DATABASE_URL")}
    env |= {
        "MAILHOST_PG_URL": f"postgres://postgres@127.0.0.1:{closed}",
        "MAILHOST_PG_FALLBACK_PORT": str(port),
        "MAILHOST_PG_DIR": "/proc/mailhost-cannot-be-here",
    }

    command = ["--collect-only", "-q", "tests/foundation/test_names.py"]
    done = subprocess.run(
        [str(ROOT / "scripts" / "test.sh"), *command],
        cwd=ROOT, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120,
    )

    assert done.returncode != 0
    assert "ensure-services: the postgres user cannot create" in done.stderr
    # Nothing ran on the fallback it used to slip into (SQLite, Redis database 0).
    assert "test_names.py" not in done.stdout and "All checks passed" not in done.stdout
