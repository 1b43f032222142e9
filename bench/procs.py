"""Processes the runner starts and stops: the database, a Celery worker, gunicorn.

Each child runs in a session of its own and is stopped through its own process group, by the
pid we got when we started it; nothing is ever stopped by name.
"""

import contextlib
import os
import platform
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from bench.env import BENCH_DB, ROOT, BenchEnv

VENV_BIN = Path(sys.executable).parent


class ChildError(RuntimeError):
    pass


class Child:
    """A long-running child process with its log file."""

    def __init__(self, name: str, argv: list[str], log: Path, env: dict | None = None):
        self.name, self.log = name, log
        self.handle = open(log, "ab")  # noqa: SIM115 (closed in stop())
        self.proc = subprocess.Popen(
            argv, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=self.handle,
            stderr=subprocess.STDOUT, env=env or os.environ.copy(), start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def peak_rss_mb(self) -> float | None:
        """VmHWM of the child itself (the solo worker runs tasks in this process)."""
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        return None

    def stop(self, timeout: float = 20.0) -> None:
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.pid, signal.SIGKILL)
                self.proc.wait(5)
        # Children of the group (gunicorn's workers) may outlive their master by a moment.
        deadline = time.monotonic() + 10
        while _group_alive(self.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _group_alive(self.pid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGKILL)
        self.handle.close()


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes in a process group, read from /proc."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            raw = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = raw[raw.rindex(")") + 2 :].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            found.append(int(entry))
    return found


WORKER_MODES = ("incremental", "full", "rewrite")


def start_worker(env: BenchEnv, queue: str, *, mode: str = "incremental",
                 node_env: dict[str, str] | None = None, label: str = "") -> Child:
    """incremental: the portal as shipped; full: MAILHOST_RECONCILE_FORCE_FULL (a full render
    and diff-apply per change); rewrite: bench.rebuild_worker (everything rewritten, reloads).
    `node_env` (`node_environment`) makes it another node's worker; `label` names its log."""
    if mode not in WORKER_MODES:
        raise ValueError(f"worker mode {mode!r}")
    child_env = os.environ.copy() | (node_env or {})
    if mode == "full":
        child_env["MAILHOST_RECONCILE_FORCE_FULL"] = "true"
    log = env.log_dir / f"worker{label}-{mode}.log"
    log.write_bytes(b"")
    app = "bench.rebuild_worker" if mode == "rewrite" else "mailhost"
    argv = [
        str(VENV_BIN / "celery"), "-A", app, "worker", "-Q", queue,
        "--concurrency", "1", "--pool", "solo", "--loglevel", "INFO",
        "--without-mingle", "--without-gossip", "--without-heartbeat",
        "-n", f"bench{label}-{os.getpid()}@%h",
    ]
    worker = Child("worker", argv, log, child_env)
    _wait(lambda: b" ready." in log.read_bytes(), worker, "the Celery worker", 180)
    return worker


def start_web(env: BenchEnv) -> Child:
    log = env.log_dir / "web.log"
    log.write_bytes(b"")
    argv = [
        str(VENV_BIN / "gunicorn"), "mailhost.wsgi:application",
        "--bind", f"127.0.0.1:{env.web_port}", "--workers", "2",
        # A 10,000-row bulk request takes longer than gunicorn's default 30 s (see B3).
        "--timeout", "600", "--error-logfile", str(log),
    ]
    web = Child("web", argv, log)

    def answers() -> bool:
        try:
            urllib.request.urlopen(f"{env.web_url}/api/v1/health", timeout=2)  # noqa: S310
        except urllib.error.HTTPError:
            return True  # 503 is an answer
        except OSError:
            return False
        return True

    _wait(answers, web, "gunicorn", 180)  # generous: the machine may be shared and busy
    return web


def _wait(ready, child: Child, what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if not child.alive():
            tail = child.log.read_text(errors="replace")[-3000:]
            raise ChildError(f"{what} exited (code {child.proc.returncode}):\n{tail}")
        if time.monotonic() > deadline:
            raise ChildError(f"{what} is not ready after {timeout:.0f} s (log: {child.log})")
        time.sleep(0.1)


# --- database --------------------------------------------------------------------------------


def recreate_database(env: BenchEnv) -> None:
    import psycopg

    with psycopg.connect(env.admin_database_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{BENCH_DB}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{BENCH_DB}"')


def drop_database(env: BenchEnv) -> None:
    import psycopg

    with psycopg.connect(env.admin_database_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{BENCH_DB}" WITH (FORCE)')


def flush_redis(env: BenchEnv) -> None:
    import redis

    redis.Redis.from_url(env.broker_url).flushdb()  # db 9: the benchmark's own


# --- machine ---------------------------------------------------------------------------------


def _output(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unknown ({exc})"
    return (out.stdout or out.stderr).strip().splitlines()[0] if (out.stdout or out.stderr) else ""


def machine_info(env: BenchEnv) -> dict:
    import django
    import psycopg

    cpu = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
         if line.startswith("model name")), platform.processor(),
    )
    meminfo = dict(
        line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines()
    )
    with psycopg.connect(env.admin_database_url) as conn:
        pg = conn.execute("SHOW server_version").fetchone()[0]
    import redis

    redis_version = redis.Redis.from_url(env.broker_url).info("server").get("redis_version")
    return {
        "nproc": os.cpu_count(),
        "cpu_model": cpu,
        "memory_mb": int(meminfo["MemTotal"].split()[0]) // 1024,
        "loadavg_at_start": os.getloadavg(),
        "kernel": platform.release(),
        "os": _output(["sh", "-c", ". /etc/os-release && echo $PRETTY_NAME"]),
        "python": platform.python_version(),
        "django": django.get_version(),
        "postgres": pg,
        "redis": redis_version,
        "postfix": _output(["postconf", "-d", "-h", "mail_version"]),
        "dovecot": _output(["dovecot", "--version"]),
        "opendkim": _output(["opendkim", "-V"]),
    }
