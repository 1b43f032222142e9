"""Pytest plugin: a real Postfix/Dovecot/OpenDKIM stack on loopback, and small mail clients.

Registered in the root conftest.py (`pytest_plugins = ["tests.stack"]`). Fixtures:

  mail_stack   session-scoped running `Stack` in a short /tmp state dir on free ports
  stack_node   points Django settings and the default MailNode row at `mail_stack`
  reconcile_worker  a real Celery worker on the node's queue, so services' changes go live

Helpers (plain functions): free_ports, imap_login, fetch_inbox, smtp_send, wait_for.
Tests that use the stack are marked `@pytest.mark.stack`. Each test should use domains of its
own (see `unique_domain`): the stack is shared by the whole session. State dirs go below
MAILHOST_TEST_STACK_BASE (default /tmp); outside a world-writable directory OpenDKIM's
RequireSafeKeys stays on, as in production.
"""

import contextlib
import dataclasses
import email
import email.policy
import email.utils
import imaplib
import itertools
import os
import shutil
import smtplib
import socket
import ssl
import tempfile
import time
from collections.abc import Callable, Iterator
from email.message import EmailMessage, Message
from pathlib import Path
from typing import TypeVar

import pytest
from django.conf import settings as django_settings

from mailhost.backend.config import (
    PORT_NAMES,
    NodeConfig,
    below_world_writable,
    edge_config_from_settings,
    inbound_config_from_settings,
)
from mailhost.backend.stack import Stack
from tests.worker_env import PORT_BLOCK_SIZE, port_candidates

T = TypeVar("T")
HOSTNAME = "mail.stack.test"
_counter = itertools.count()


_PORT_CANDIDATES = port_candidates()


def free_ports(count: int) -> list[int]:
    """`count` distinct ports free on 127.0.0.1 for TCP and UDP both (DNS tests reuse them),
    from this xdist worker's block (tests/worker_env.py)."""
    held: list[socket.socket] = []
    ports: list[int] = []
    tries = itertools.count()
    try:
        while len(ports) < count:
            if next(tries) == 2 * PORT_BLOCK_SIZE:
                raise RuntimeError(f"no {count} free ports on 127.0.0.1 (found {ports})")
            tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                tcp.bind(("127.0.0.1", next(_PORT_CANDIDATES)))
            except OSError:  # in use, or in TIME_WAIT
                tcp.close()
                continue
            held.append(tcp)
            port = tcp.getsockname()[1]
            udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                udp.bind(("127.0.0.1", port))
            except OSError:
                udp.close()
                continue
            held.append(udp)
            ports.append(port)
    finally:
        for sock in held:
            sock.close()
    return ports


def stack_config(state_dir: Path, **overrides) -> NodeConfig:
    """A NodeConfig for a throwaway stack: free ports, loopback, dev mode."""
    *ports, internet = free_ports(len(PORT_NAMES) + 1)
    values = {
        "state_dir": state_dir,
        "hostname": HOSTNAME,
        "bind_address": "127.0.0.1",
        "ports": dict(zip(PORT_NAMES, ports, strict=True)),
        # Mail for *.example goes to the fake internet MX the outbound tests start there.
        "internet_mx": f"127.0.0.1:{internet}",
        "dev": True,
        # False below /tmp (world-writable): OpenDKIM would refuse every key there.
        "dkim_require_safe_keys": not below_world_writable(state_dir),
        # Rspamd, the resolver and greylisting as scripts/test.sh configures them (local
        # resolver, XCLIENT from 127.0.0.1, a short greylisting window, the shared regex cache).
        "inbound": inbound_config_from_settings(django_settings),
        "report_local_parts": tuple(django_settings.MAILHOST_REPORT_INTAKE_LOCAL_PARTS),
        # Every node of the install shares it: a domain moves between the suite's nodes.
        "doveadm_password": django_settings.MAILHOST_DOVEADM_PASSWORD,
        # The edge proxies to a portal port of its own (nothing answers there until a test
        # starts a portal on it: tests.portal.running_portal(port=stack_web_port(stack))).
        "cert_watch_seconds": float(django_settings.MAILHOST_CERT_WATCH_SECONDS),
        "edge": dataclasses.replace(edge_config_from_settings(django_settings),
                                    upstream=f"127.0.0.1:{free_ports(1)[0]}"),
    }
    values.update(overrides)
    return NodeConfig(**values)


def make_state_dir() -> Path:
    """A fresh state dir below MAILHOST_TEST_STACK_BASE (default /tmp). Short on purpose:
    Dovecot's unix sockets live below it (107-byte limit), and pytest's tmp_path is deep."""
    base = os.environ.get("MAILHOST_TEST_STACK_BASE", "/tmp")
    return Path(tempfile.mkdtemp(prefix="mh", dir=base))


@pytest.fixture(scope="session")
def mail_stack() -> Iterator[Stack]:
    stack = Stack(stack_config(make_state_dir()))
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()
        shutil.rmtree(stack.cfg.state_dir, ignore_errors=True)


@pytest.fixture
def stack_node(mail_stack: Stack, settings, db):
    """The default MailNode and Django settings, pointed at the running test stack."""
    from nodes.changes import node_default

    settings.MAILHOST_NODE_STATE_DIR = mail_stack.cfg.state_dir
    settings.MAILHOST_PORTS = dict(mail_stack.cfg.ports)
    settings.MAILHOST_HOSTNAME = mail_stack.cfg.hostname
    settings.MAILHOST_BIND_ADDRESS = mail_stack.cfg.bind_address
    settings.MAILHOST_TEST_INTERNET_MX = mail_stack.cfg.internet_mx
    settings.EMAIL_HOST, settings.EMAIL_PORT = mail_stack.address("internal")
    settings.MAILHOST_WEB_PORT = stack_web_port(mail_stack)  # what the edge proxies to
    node = node_default()
    if node.state_dir != str(mail_stack.cfg.state_dir):
        node.state_dir = str(mail_stack.cfg.state_dir)
        node.save(update_fields=["state_dir"])
    return node


@pytest.fixture
def reconcile_worker(stack_node):
    """A real Celery worker consuming the node's queue from the real Redis broker."""
    from celery.contrib.testing.worker import start_worker

    from mailhost.celery import app
    from mailhost.redis import get_redis
    from nodes.queues import node_queue, pending_key

    queue = node_queue(stack_node.name)
    get_redis().delete(pending_key(stack_node.pk), queue)  # nothing left from other tests
    with start_worker(app, perform_ping_check=False, queues=[queue], pool="solo", concurrency=1):
        yield stack_node


def stack_web_port(stack: Stack) -> int:
    """The port the stack's edge sends the portal's requests to."""
    return int(stack.cfg.edge.upstream.rsplit(":", 1)[1])


def unique_domain(prefix: str = "d") -> str:
    """A domain name no other test of this session (or process) uses."""
    return f"{prefix}{os.getpid()}x{next(_counter)}.test"


# --- clients ---------------------------------------------------------------------------------


def _tls_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the stack's self-signed certificate, on loopback
    return context


def _imap(stack: Stack) -> imaplib.IMAP4:
    client = imaplib.IMAP4(*stack.address("imap"), timeout=10)
    client.starttls(_tls_context())
    return client


def imap_login(stack: Stack, user: str, password: str) -> bool:
    """Whether IMAP LOGIN (after STARTTLS) succeeds."""
    client = _imap(stack)
    try:
        client.login(user, password)
    except imaplib.IMAP4.error:
        return False
    finally:
        with contextlib.suppress(imaplib.IMAP4.error, OSError):
            client.logout()
    return True


def fetch_inbox(stack: Stack, user: str, password: str) -> list[Message]:
    """Every message in the user's INBOX, oldest first, parsed."""
    client = _imap(stack)
    try:
        client.login(user, password)
        client.select("INBOX", readonly=True)
        _, data = client.search(None, "ALL")
        messages = []
        for num in data[0].split():
            _, parts = client.fetch(num, "(BODY.PEEK[])")
            messages.append(email.message_from_bytes(parts[0][1], policy=email.policy.default))
        return messages
    finally:
        client.logout()


def fetch_inbox_raw(stack: Stack, user: str, password: str) -> list[bytes]:
    """Like fetch_inbox, but the raw bytes (for signature checks)."""
    client = _imap(stack)
    try:
        client.login(user, password)
        client.select("INBOX", readonly=True)
        _, data = client.search(None, "ALL")
        return [client.fetch(num, "(BODY.PEEK[])")[1][0][1] for num in data[0].split()]
    finally:
        client.logout()


def smtp_send(
    stack: Stack,
    port_name: str,
    sender: str,
    to: str | list[str],
    message: str | bytes | EmailMessage,
    login: tuple[str, str] | None = None,
) -> tuple[int, bytes]:
    """Send one message; return the server's reply to DATA, e.g. (250, b'2.0.0 Ok: queued as …').

    Raises smtplib.SMTPSenderRefused / SMTPRecipientsRefused / SMTPDataError /
    SMTPAuthenticationError when the server refuses (each carries the code and text).
    `port_name`: smtp, submission (STARTTLS), submissions (implicit TLS) or internal.
    """
    recipients = [to] if isinstance(to, str) else list(to)
    data = message.as_bytes() if isinstance(message, EmailMessage) else message
    with _smtp(stack, port_name) as client:
        if login:
            client.login(*login)
        code, text = client.mail(sender)
        if code != 250:
            raise smtplib.SMTPSenderRefused(code, text, sender)
        refused = {}
        for rcpt in recipients:
            code, text = client.rcpt(rcpt)
            if code not in (250, 251):
                refused[rcpt] = (code, text)
        if refused:
            raise smtplib.SMTPRecipientsRefused(refused)
        code, text = client.data(data)
        if code != 250:
            raise smtplib.SMTPDataError(code, text)
        return code, text


def _smtp(stack: Stack, port_name: str) -> smtplib.SMTP:
    host, port = stack.address(port_name)
    if port_name == "submissions":
        client: smtplib.SMTP = smtplib.SMTP_SSL(host, port, context=_tls_context(), timeout=10)
    else:
        client = smtplib.SMTP(host, port, timeout=10)
    client.ehlo("client.stack.test")
    if port_name == "submission":
        client.starttls(context=_tls_context())
        client.ehlo("client.stack.test")
    return client


def make_message(sender: str, to: str, subject: str, body: str = "Hello.\n") -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, to, subject
    msg["Message-ID"] = email.utils.make_msgid(domain="stack.test")
    msg["Date"] = email.utils.formatdate()
    msg.set_content(body)
    return msg


def applied(obj) -> bool:
    """The node of `obj` (a domain, mailbox or alias) has applied the revision it needs."""
    from nodes.models import MailNode  # Django's models: only once the app registry is ready

    obj.refresh_from_db()
    node_id = obj.node_id if hasattr(obj, "node_id") else obj.domain.node_id
    return MailNode.objects.get(pk=node_id).applied_revision >= obj.revision


def wait_for(predicate: Callable[[], T], timeout: float = 30.0, interval: float = 0.05) -> T:
    """Poll until `predicate()` is truthy and return it; fail the test after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s: {predicate}")
        time.sleep(interval)
