"""The portal as `make up` runs it: scripts/web.sh (gunicorn, two worker processes), on a free
port, against this test run's database, for tests about load, logging and processes.

    with running_portal() as portal:   # portal.url, portal.log_dir
        ...
"""

import contextlib
import http.client
import os
import shutil
import signal
import subprocess
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from django.conf import settings

from tests.stack import free_ports, wait_for

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Portal:
    url: str
    log_dir: Path

    def log(self) -> str:
        path = self.log_dir / "web.log"
        return path.read_text(errors="replace") if path.exists() else ""


def database_url() -> str:
    """This run's (test) database as a DATABASE_URL, for another process."""
    db = settings.DATABASES["default"]
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    user = quote(db["USER"] or "", safe="")
    password = f":{quote(db['PASSWORD'], safe='')}" if db["PASSWORD"] else ""
    host = db["HOST"] or "127.0.0.1"
    port = f":{db['PORT']}" if db["PORT"] else ""
    return f"postgres://{user}{password}@{host}{port}/{quote(db['NAME'], safe='')}"


def _answers(url: str) -> bool:
    """Any HTTP answer counts: a portal started without its database answers 500 or 503, one in
    production mode redirects to https (not followed: nothing speaks TLS on its port)."""
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=5)
    try:
        connection.request("GET", parts.path or "/")
        connection.getresponse().read()
        return True
    except (http.client.HTTPException, OSError):
        return False
    finally:
        connection.close()


@contextlib.contextmanager
def running_portal(port: int | None = None, **env: str) -> Iterator[Portal]:
    """scripts/web.sh in the foreground on `port` (default: a free one); stopped (by its pid)
    afterwards."""
    port = port or free_ports(1)[0]
    var_dir = Path(tempfile.mkdtemp(prefix="mh-web-"))
    # The test process's generated secrets, so its sessions and encrypted values are valid.
    for name in ("secret_key", "dkim_encryption_key"):
        source = Path(settings.VAR_DIR) / name
        if source.exists():
            (var_dir / name).write_text(source.read_text())
    if Path(settings.STATIC_ROOT).exists():
        (var_dir / "staticfiles").symlink_to(settings.STATIC_ROOT)
    environ = os.environ | {
        "MAILHOST_WEB_PORT": str(port),
        "MAILHOST_VAR_DIR": str(var_dir),
        "DATABASE_URL": database_url(),
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "MAILHOST_NODE_STATE_DIR": str(settings.MAILHOST_NODE_STATE_DIR),
        "DATABASE_CONN_MAX_AGE": "0",  # no idle connection outlives a request (test DB drop)
    } | env
    process = subprocess.Popen(  # noqa: S603
        [str(ROOT / "scripts" / "web.sh")], env=environ, cwd=ROOT,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    portal = Portal(url=f"http://127.0.0.1:{port}", log_dir=var_dir / "log")
    try:
        wait_for(lambda: process.poll() is not None or _answers(portal.url + "/accounts/login/"),
                 timeout=60)
        if process.poll() is not None:
            raise AssertionError(f"the portal did not start:\n{portal.log()[-3000:]}")
        yield portal
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(var_dir, ignore_errors=True)
