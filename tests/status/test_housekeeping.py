"""Housekeeping: each job removes only what is past its retention, every run is recorded and
shown, and a failing job is a status problem (alerted once); node logs are rotated in place
while the daemon keeps appending."""

import datetime as dt
import gzip
import os
import shutil

import pytest
from django.test import Client
from django.utils import timezone

from identity.models import InboundFlow
from mailhost.backend.logrotate import rotate_logs
from nodes.changes import node_default
from status.housekeeping import housekeeping_run
from status.models import HousekeepingRun, State, StatusAlert, StatusCheck
from status.tasks import housekeep, housekeep_node
from tests.factories import UserFactory
from tests.stack import make_state_dir

pytestmark = pytest.mark.django_db


def test_it_prunes_only_what_is_past_retention_and_records_the_run(settings):
    settings.MAILHOST_INBOUND_FLOW_RETENTION_DAYS = 30
    node = node_default()
    today = timezone.now().date()
    for age in (29, 31, 400):
        InboundFlow.objects.create(node=node, day=today - dt.timedelta(days=age),
                                   domain="example.com", outcome="accepted", count=1)
    assert housekeep.apply(args=["inbound-flow"]).get() is True
    assert sorted((today - row.day).days for row in InboundFlow.objects.all()) == [29]
    run = HousekeepingRun.objects.get(job="inbound-flow")
    assert run.ok and run.result == {"inbound-flow": 2}
    check = StatusCheck.objects.get(key="housekeeping:inbound-flow")
    assert check.state == State.OK and "inbound-flow: 2" in check.evidence

    settings.MAILHOST_INBOUND_FLOW_RETENTION_DAYS = 0  # 0: kept forever
    housekeep.apply(args=["inbound-flow"])
    assert InboundFlow.objects.count() == 1

    staff = Client()
    staff.force_login(UserFactory(is_superuser=True))
    page = staff.get("/mail-admin/status/").content.decode()
    assert page.count('data-run="inbound-flow"') == HousekeepingRun.objects.count() == 2
    assert "inbound-flow: 2" in page


def test_the_status_history_job_keeps_recent_alerts(settings):
    settings.MAILHOST_STATUS_HISTORY_RETENTION_DAYS = 90
    old = StatusAlert.objects.create(key="k", title="t", state=State.PROBLEM)
    StatusAlert.objects.filter(pk=old.pk).update(
        created_at=timezone.now() - dt.timedelta(days=91))
    StatusAlert.objects.create(key="k", title="t", state=State.OK)
    housekeeping_run("status-history")
    assert list(StatusAlert.objects.values_list("state", flat=True)) == [State.OK]


def test_a_failing_job_is_a_problem_alerted_once():
    def broken(now):
        raise OSError("the archive volume is read-only")

    for _ in range(2):
        run = housekeeping_run("archives", broken)
        assert not run.ok and "read-only" in run.error
    check = StatusCheck.objects.get(key="housekeeping:archives")
    assert check.state == State.PROBLEM and "read-only" in check.evidence
    assert StatusAlert.objects.filter(key="housekeeping:archives").count() == 1
    housekeeping_run("archives", lambda now: {"files": 3})
    assert StatusCheck.objects.get(key="housekeeping:archives").state == State.OK


def test_node_logs_are_rotated_and_old_ones_expire(settings, tmp_path):
    log_dir = tmp_path / "log"
    log_dir.mkdir()
    big, small = log_dir / "postfix.log", log_dir / "dovecot.log"
    big.write_bytes(b"a line of postfix log\n" * 1000)
    small.write_bytes(b"short\n")
    stale = log_dir / "postfix.log.20200101T000000.gz"
    stale.write_bytes(gzip.compress(b"old"))
    now = timezone.now()
    month_ago = (now - dt.timedelta(days=31)).timestamp()
    os.utime(stale, (month_ago, month_ago))
    with open(big, "ab") as writer:  # a daemon holding its log open for appending
        result = rotate_logs(log_dir, max_bytes=1024, keep_days=30, now=now)
        writer.write(b"after rotation\n")
    assert result["rotated"] == 1 and result["deleted"] == 1 and result["bytes_freed"] > 0
    assert big.read_bytes() == b"after rotation\n"  # appended at the new end, no hole
    assert small.read_bytes() == b"short\n"
    [kept] = log_dir.glob("postfix.log.*.gz")
    assert gzip.decompress(kept.read_bytes()) == b"a line of postfix log\n" * 1000
    assert not stale.exists()


def test_the_node_job_runs_over_the_node_s_state_directory(settings):
    tmp_path = make_state_dir()  # short: NodeConfig refuses long state directories
    node = node_default()
    node.state_dir = str(tmp_path)
    node.save(update_fields=["state_dir"])
    (tmp_path / "log").mkdir()
    (tmp_path / "log" / "rspamd.log").write_bytes(b"x" * 4096)
    settings.MAILHOST_LOG_MAX_BYTES = 1024
    assert housekeep_node.apply(args=[node.pk]).get() is True
    run = HousekeepingRun.objects.get(job=f"node-logs:{node.name}")
    assert run.result["rotated"] == 1
    assert (tmp_path / "log" / "rspamd.log").stat().st_size == 0
    shutil.rmtree(tmp_path)
