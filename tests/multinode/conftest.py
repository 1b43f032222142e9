"""A second complete mail node, "node-b", beside the suite's own (`mail_stack`, node "local").

Node B is what a second host would be: its own state directory, ports and host name, and its
own Celery worker *process* consuming only its queue (`node.node-b`), configured as that host's
worker would be (MAILHOST_NODE_NAME, MAILHOST_NODE_STATE_DIR, MAILHOST_*_PORT in its
environment) against the same PostgreSQL and Redis as the portal. Node A's worker is the
suite's `reconcile_worker` (a thread of the test process, whose settings are node A's).

Fixtures:
  node_b_stack  session-scoped running `Stack` of node B
  two_nodes     both node rows with their SMTP addresses, both workers running: a `TwoNodes`
                whose `b` can stop and start node B (daemons and worker) within a test
"""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from django.conf import settings

from mailhost.backend.stack import Stack
from mailhost.redis import get_redis
from nodes.models import MailNode
from nodes.peers import node_set_smtp_address
from nodes.queues import node_queue, pending_key
from tests.portal import ROOT, database_url
from tests.stack import make_state_dir, stack_config, stack_web_port, wait_for

NODE_B = "node-b"
# Another host name: Postfix refuses to deliver to a server that greets with its own name
# ("mail loops back to myself"), as two real hosts would never share one.
HOSTNAME_B = "mail-b.stack.test"
# The environment variable of each port (mailhost/settings.py, NodeConfig.from_settings).
PORT_ENV = {
    "smtp": "MAILHOST_SMTP_PORT", "submission": "MAILHOST_SUBMISSION_PORT",
    "submissions": "MAILHOST_SUBMISSIONS_PORT", "imap": "MAILHOST_IMAP_PORT",
    "imaps": "MAILHOST_IMAPS_PORT", "managesieve": "MAILHOST_MANAGESIEVE_PORT",
    "internal": "MAILHOST_INTERNAL_SMTP_PORT", "authpolicy": "MAILHOST_AUTHPOLICY_PORT",
    "resolver": "MAILHOST_RESOLVER_PORT", "http": "MAILHOST_HTTP_PORT",
    "https": "MAILHOST_HTTPS_PORT", "dav": "MAILHOST_DAV_PORT",
    "forward": "MAILHOST_FORWARD_PORT", "srs": "MAILHOST_SRS_PORT",
    "srs_reverse": "MAILHOST_SRS_REVERSE_PORT", "stats": "MAILHOST_DOVECOT_STATS_PORT",
    "doveadm": "MAILHOST_DOVEADM_PORT",
}  # fmt: skip


@pytest.fixture(scope="session")
def node_b_stack() -> Iterator[Stack]:
    stack = Stack(stack_config(make_state_dir(), hostname=HOSTNAME_B))
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()
        shutil.rmtree(stack.cfg.state_dir, ignore_errors=True)


def worker_environment(stack: Stack, node_name: str) -> dict[str, str]:
    """The environment a node's worker runs with on its own host: this run's database and
    broker, the node's name, state dir, host name and ports."""
    env = os.environ | {
        "DATABASE_URL": database_url(),
        "DATABASE_CONN_MAX_AGE": "0",  # no idle connection outlives a task (test DB drop)
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "MAILHOST_NODE_NAME": node_name,
        "MAILHOST_NODE_STATE_DIR": str(stack.cfg.state_dir),
        "MAILHOST_HOSTNAME": stack.cfg.hostname,
        "MAILHOST_TEST_INTERNET_MX": stack.cfg.internet_mx,
        "MAILHOST_WEB_PORT": str(stack_web_port(stack)),
    }
    return env | {PORT_ENV[name]: str(port) for name, port in stack.cfg.ports.items()}


@dataclass
class NodeB:
    """Node B's row, stack and worker process; `stop()`/`start()` take all of it down/up."""

    node: MailNode
    stack: Stack
    log_dir: Path
    worker: subprocess.Popen | None = field(default=None)

    @property
    def worker_log(self) -> Path:
        return self.log_dir / "worker.log"

    def start_worker(self) -> None:
        with open(self.worker_log, "ab") as log:
            self.worker = subprocess.Popen(  # noqa: S603
                [sys.executable, "-m", "celery", "-A", "mailhost", "worker",
                 "-Q", node_queue(self.node.name), "-P", "solo", "-c", "1", "-l", "info",
                 "-n", f"{self.node.name}@%h", "--without-gossip", "--without-mingle",
                 "--without-heartbeat"],
                env=worker_environment(self.stack, self.node.name), cwd=ROOT,
                stdout=log, stderr=subprocess.STDOUT,
            )
        wait_for(lambda: self.worker.poll() is not None or b" ready." in self._log(), 60)
        if self.worker.poll() is not None:
            raise AssertionError(f"node B's worker did not start:\n{self._log()[-3000:]!r}")

    def stop_worker(self) -> None:
        if self.worker is None:
            return
        self.worker.send_signal(signal.SIGTERM)  # warm shutdown: a running task finishes
        try:
            self.worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.worker.kill()
            self.worker.wait()
        self.worker = None

    def stop(self) -> None:
        """Node B goes down: its worker and every daemon."""
        self.stop_worker()
        self.stack.stop()

    def start(self) -> None:
        self.stack.start()
        self.start_worker()

    def _log(self) -> bytes:
        return self.worker_log.read_bytes() if self.worker_log.exists() else b""


@dataclass
class TwoNodes:
    a: MailNode
    a_stack: Stack
    b: NodeB


@pytest.fixture
def two_nodes(reconcile_worker, mail_stack, node_b_stack) -> Iterator[TwoNodes]:
    """Node A ("local", the suite's stack and worker) and node B, each with the SMTP address
    the other delivers to; B's worker runs until the end of the test, and B is running again
    for the next test whatever this one did to it."""
    node_a = node_set_smtp_address(node=reconcile_worker, host="127.0.0.1",
                                   port=mail_stack.cfg.ports["smtp"])
    node_b = MailNode.objects.create(name=NODE_B, state_dir=str(node_b_stack.cfg.state_dir))
    node_b = node_set_smtp_address(node=node_b, host="127.0.0.1",
                                   port=node_b_stack.cfg.ports["smtp"])
    get_redis().delete(pending_key(node_b.pk), node_queue(NODE_B))  # nothing from other tests
    b = NodeB(node=node_b, stack=node_b_stack,
              log_dir=Path(tempfile.mkdtemp(prefix="mh-node-b-")))
    if not node_b_stack.is_running():
        node_b_stack.start()
    b.start_worker()
    try:
        yield TwoNodes(a=node_a, a_stack=mail_stack, b=b)
    finally:
        b.stop_worker()
        if not node_b_stack.is_running():
            node_b_stack.start()
        shutil.rmtree(b.log_dir, ignore_errors=True)
