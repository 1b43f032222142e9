"""Each pytest-xdist worker gets its own Redis database, test database, node state dir and ports.

Loaded with `-p tests.worker_env` (pyproject's addopts), so it runs before pytest-django
imports the settings: xdist names the worker in PYTEST_XDIST_WORKER ("gw0", "gw1", …) before
the worker reads its options. Without it two workers would share the broker's queues (one
worker's Celery consuming the other's node tasks), the Redis cache, the SQLite test file and
the lookup files a reconcile writes outside a test stack, and a port one worker found free
could be the one another worker's daemon binds a moment later (`port_candidates`, used by
tests.stack.free_ports). Stack state dirs are fresh per stack already (tests/stack.py)."""

import itertools
import os
import random
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

REDIS_SETTINGS = ("CELERY_BROKER_URL", "REDIS_URL", "MAILHOST_RSPAMD_REDIS_URL")


def other_redis_db(url: str, offset: int) -> str:
    """`url` with its database number lowered by `offset` (15 → 14 → …): the suite's
    database counts down, away from database 0, the one `make up` uses."""
    parts = urlsplit(url)
    db = int(parts.path.strip("/") or 0) - offset
    if db < 1:
        raise RuntimeError(f"too many test workers for Redis database {parts.path}: {url}")
    return urlunsplit(parts._replace(path=f"/{db}"))


# Each worker's ports: a block below Linux's ephemeral range (32768–60999), so they are never
# another worker's, nor a client socket's source port either.
PORT_BLOCK_START, PORT_BLOCK_SIZE, PORT_BLOCKS_END = 10000, 2500, 32768


def port_candidates() -> Iterator[int]:
    """Ports to try, endlessly: this worker's block in turn from a random place (a port comes
    round again only after the whole block), or 0 (the kernel's pick) outside xdist."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if not worker:
        return itertools.repeat(0)
    low = PORT_BLOCK_START + int(worker.removeprefix("gw")) * PORT_BLOCK_SIZE
    if low + PORT_BLOCK_SIZE > PORT_BLOCKS_END:
        raise RuntimeError(f"too many test workers for a port block each: {worker}")
    start = random.randrange(PORT_BLOCK_SIZE)
    return (low + (start + step) % PORT_BLOCK_SIZE for step in itertools.count())


def isolate_worker(worker: str) -> None:
    index = int(worker.removeprefix("gw"))
    for name in REDIS_SETTINGS:
        if os.environ.get(name):
            os.environ[name] = other_redis_db(os.environ[name], index)
    suffix = os.environ.get("TEST_DB_SUFFIX")
    os.environ["TEST_DB_SUFFIX"] = f"{suffix}_{worker}" if suffix else worker
    var_dir = os.environ.get("MAILHOST_VAR_DIR")
    if var_dir and "MAILHOST_NODE_STATE_DIR" not in os.environ:
        os.environ["MAILHOST_NODE_STATE_DIR"] = os.path.join(var_dir, f"node-{worker}")


if os.environ.get("PYTEST_XDIST_WORKER"):
    isolate_worker(os.environ["PYTEST_XDIST_WORKER"])
