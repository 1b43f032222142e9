"""The benchmark's isolated environment, written to os.environ before Django is set up.

The runner, the Celery worker and gunicorn (its subprocesses) all read the same variables, so
they agree on the database, the broker, the node's state dir and the stack's ports.
"""

import os
import socket
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse, urlunparse

from mailhost.backend.config import PORT_ENV, PORT_NAMES

ROOT = Path(__file__).resolve().parent.parent
OUT_DIR = ROOT / "var" / "bench"
# One engineer's run must not drop another's database: both may be moved (BENCH_DB_NAME,
# BENCH_REDIS_DB) when several share a PostgreSQL and a Redis.
BENCH_DB = os.environ.get("BENCH_DB_NAME", "mailhost_bench")
REDIS_DB = int(os.environ.get("BENCH_REDIS_DB", "9"))
NODE_NAME = "bench"
HOSTNAME = "mail.bench.test"


@dataclass
class BenchEnv:
    state_dir: Path
    ports: dict[str, int]
    web_port: int
    database_url: str
    admin_database_url: str  # the `postgres` database, to drop and create ours
    broker_url: str
    log_dir: Path = field(default_factory=lambda: OUT_DIR / "logs")

    @property
    def web_url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"


def free_ports(count: int) -> list[int]:
    """`count` distinct TCP ports free on 127.0.0.1 (all held until all are found)."""
    held, ports = [], []
    try:
        while len(ports) < count:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            held.append(sock)
            ports.append(sock.getsockname()[1])
    finally:
        for sock in held:
            sock.close()
    return ports


def short_state_dir(prefix: str = "mhb") -> Path:
    """Dovecot's unix sockets live below the state dir (107-byte limit): keep it short."""
    return Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))


def _with_path(url: str, path: str) -> str:
    return urlunparse(urlparse(url)._replace(path=path))


def _database_urls() -> tuple[str, str]:
    base = os.environ.get("BENCH_DATABASE_URL") or os.environ.get("DATABASE_URL") or (
        "postgres://postgres@127.0.0.1:5432/postgres"
    )
    if urlparse(base).scheme not in ("postgres", "postgresql"):
        raise SystemExit(f"bench needs PostgreSQL; DATABASE_URL is {base!r}")
    return _with_path(base, f"/{BENCH_DB}"), _with_path(base, "/postgres")


def configure() -> BenchEnv:
    """Pick ports and a state dir, and export everything the portal's settings read."""
    database_url, admin_url = _database_urls()
    broker = os.environ.get("CELERY_BROKER_URL") or "redis://127.0.0.1:6379/0"
    broker = _with_path(broker, f"/{REDIS_DB}")
    ports = free_ports(len(PORT_NAMES) + 2)
    env = BenchEnv(
        state_dir=short_state_dir(),
        ports=dict(zip(PORT_NAMES, ports, strict=False)),
        web_port=ports[-1],
        database_url=database_url,
        admin_database_url=admin_url,
        broker_url=broker,
    )
    env.log_dir.mkdir(parents=True, exist_ok=True)
    values = {
        "DJANGO_SETTINGS_MODULE": "mailhost.settings",
        "DATABASE_URL": database_url,
        "CELERY_BROKER_URL": broker,
        "REDIS_URL": broker,
        "CELERY_TASK_ALWAYS_EAGER": "false",
        "MAILHOST_VAR_DIR": str(OUT_DIR / "var"),
        "MAILHOST_NODE_STATE_DIR": str(env.state_dir),
        "MAILHOST_NODE_NAME": NODE_NAME,
        "MAILHOST_HOSTNAME": HOSTNAME,
        "MAILHOST_BIND_ADDRESS": "127.0.0.1",
        "MAILHOST_STACK_DEV": "true",
        "API_RATE_LIMIT": "0",  # the benchmark is one client sending thousands of requests
        "ALLOWED_HOSTS": "127.0.0.1,localhost,testserver",
        "EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend",
        "DEBUG": "false",
        "MAILHOST_HTTPS": "false",  # gunicorn on plain http://127.0.0.1
        "LOG_LEVEL": "WARNING",
        "PYTHONUNBUFFERED": "1",
        # B8 sends "from the internet" (XCLIENT) through Rspamd; a short greylisting window for
        # its warm-up, the offline resolver, and a regex cache kept between runs.
        "MAILHOST_SMTP_XCLIENT_HOSTS": "127.0.0.1",
        "MAILHOST_GREYLIST_DELAY_SECONDS": "1",
        "MAILHOST_RESOLVER_MODE": "local",
        "MAILHOST_RSPAMD_REDIS_URL": broker,
        "MAILHOST_RSPAMD_CACHE_DIR": str(OUT_DIR / "rspamd-hs"),
        # B8's one outside client sends thousands of messages a minute: not an abuse test.
        "MAILHOST_SMTP_MESSAGE_RATE_LIMIT": "1000000",
        "MAILHOST_SMTP_CONNECTION_RATE_LIMIT": "100000",
        # B9 sends through the API to "the internet": *.example goes to its loopback MX.
        "MAILHOST_TEST_INTERNET_MX": f"127.0.0.1:{ports[-2]}",
    }
    values |= {PORT_ENV[name]: str(port) for name, port in env.ports.items()}
    (OUT_DIR / "var").mkdir(parents=True, exist_ok=True)
    os.environ.pop("MAILHOST_RECONCILE_FORCE_FULL", None)
    os.environ.update(values)
    return env
