"""Inbound scoring and DMARC enforcement go on with the whole control plane stopped.

A throwaway PostgreSQL and Redis of this test's own (Redis is also Rspamd's here) hold the
portal's state; the operator commands provision a mailbox and reconcile it onto a real stack
started by `manage.py stack start`; then PostgreSQL and Redis are shut down and no web server
or worker runs. Rspamd, with only its node-local files, still refuses GTUBE and a forged
p=reject sender and stamps Authentication-Results on what it lets through (greylisting, which
needs Redis, is off: the ham is accepted at the first attempt).
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
from tests.inbound.support import (
    GTUBE,
    fresh_ip,
    in_folder,
    marked,
    message,
    outside_server,
    outside_zone,
    send_from_internet,
)
from tests.reconcile.test_control_plane_down import (
    _pg_bin,
    throwaway_services,  # noqa: F401 (fixture)
)
from tests.stack import free_ports, wait_for

pytestmark = pytest.mark.stack


def test_it_scores_and_enforces_dmarc_with_database_redis_and_worker_stopped(
    throwaway_services,  # noqa: F811
):
    state_dir = Path(tempfile.mkdtemp(prefix="mh", dir="/tmp"))
    ports = dict(zip(PORT_NAMES, free_ports(len(PORT_NAMES)), strict=True))
    env = (
        os.environ
        | {
            "DATABASE_URL": throwaway_services["pg_url"],
            "CELERY_BROKER_URL": throwaway_services["redis_url"],
            "MAILHOST_RSPAMD_REDIS_URL": throwaway_services["redis_url"],
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
        manage("adddomain", "victim.test", "--org", "victim")
        password = manage("addmailbox", "ceo@victim.test").split("Password: ")[1].strip()
        manage("stack", "start")
        manage("reconcile")
        outside_zone(stack, "bank.test", [
            'bank.test. 300 IN TXT "v=spf1 ip4:198.51.100.20 -all"',
            '_dmarc.bank.test. 300 IN TXT "v=DMARC1; p=reject"',
            "bank.test. 300 IN MX 10 mx.bank.test.",
        ])
        outside_zone(stack, "friend.test", [
            f'friend.test. 300 IN TXT "v=spf1 ip4:{(ip := fresh_ip())} -all"',
            "friend.test. 300 IN MX 10 mx.friend.test.",
        ])
        friend = outside_server(stack, "friend.test", ip)
        forger = outside_server(stack, "forger.test", fresh_ip())

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

        ceo = "ceo@victim.test"
        with pytest.raises(smtplib.SMTPDataError) as gtube:
            send_from_internet(stack, friend, "a@friend.test", ceo,
                               message("a@friend.test", ceo, marked("gtube"), body=GTUBE))
        assert 500 <= gtube.value.smtp_code < 600
        with pytest.raises(smtplib.SMTPDataError) as forged:
            send_from_internet(stack, forger, "payments@bank.test", ceo,
                               message("payments@bank.test", ceo, marked("wire now")))
        assert 500 <= forged.value.smtp_code < 600
        assert forged.value.smtp_error.startswith(b"5.7.1")

        subject = marked("lunch on friday")
        code, _ = send_from_internet(stack, friend, "anna@friend.test", ceo,
                                     message("anna@friend.test", ceo, subject))
        assert code == 250
        (delivered,) = wait_for(lambda: in_folder(stack, ceo, password, "INBOX", subject))
        (results,) = delivered.get_all("Authentication-Results")
        assert str(results).startswith("mail.cp.test")
        assert "spf=pass" in str(results)
    finally:
        stack.stop()
        shutil.rmtree(state_dir, ignore_errors=True)
