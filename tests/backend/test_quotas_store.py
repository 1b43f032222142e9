"""The node's sending quota store (mailhost.backend.quotas) and the outbound stores' apply, on
files (no daemons): queued messages and per-login rates, what frees a queued slot, drift."""

import datetime as dt
import sqlite3

import pytest

from mailhost.backend import outbound, quotas
from mailhost.backend.events import follow, prune_forwarded

NOW = 1_800_000_000.0  # an instant in the middle of an hour
ORG = ("a.test", "org:1")


def store(tmp_path, **limits):
    """A quota store holding one organisation limit for a.test."""
    values = {name: limits.get(name) for name in quotas.LIMIT_COLUMNS[2:]}
    outbound.apply(tmp_path, outbound.OutboundSnap(limits=frozenset({(*ORG, *values.values())})))
    return tmp_path / quotas.QUOTAS_DB


def test_it_refuses_a_message_while_the_queue_holds_the_limit_and_frees_it_on_removal(tmp_path):
    path = store(tmp_path, max_queued=2)
    quotas.charge(path, "news@a.test", 1, NOW, queue_id="Q1")
    quotas.charge(path, "news@a.test", 1, NOW, queue_id="Q2")
    with pytest.raises(quotas.OverQuota) as full:
        quotas.charge(path, "news@a.test", 1, NOW, queue_id="Q3")
    assert (full.value.code, full.value.status) == ("451", "4.7.1")
    assert "queued messages limit of 2" in full.value.text
    assert full.value.retry_after == quotas.QUEUED_RETRY_SECONDS
    assert quotas.usage(path, "org:1", NOW) == {"hourly": 2, "daily": 2, "queued": 2,
                                                "refused": 1}
    assert quotas.refusals(path) == {("org:1", "queued"): 1}

    log, events = tmp_path / "postfix.log", tmp_path / "events.sqlite"
    log.write_text("Dec 01 15:31:00 mail postfix/qmgr[10]: Q1: removed\n")
    follow(log, events, quotas_db=path)  # the event agent saw qmgr drop Q1
    quotas.charge(path, "news@a.test", 1, NOW, queue_id="Q3")
    assert quotas.usage(path, "org:1", NOW)["queued"] == 2


def test_it_forgets_queued_entries_postfix_never_held(tmp_path):
    path = store(tmp_path, max_queued=5)
    quotas.charge(path, "news@a.test", 1, NOW - 600, queue_id="OLD")  # refused after the milter
    quotas.charge(path, "news@a.test", 1, NOW - 600, queue_id="LIVE")
    quotas.charge(path, "news@a.test", 1, NOW, queue_id="NEW")  # too young to judge
    assert quotas.sweep_queued(path, {"LIVE"}, older_than=300, now=NOW) == 1
    assert quotas.usage(path, "org:1", NOW)["queued"] == 2


def test_it_holds_each_login_to_its_own_hourly_rate(tmp_path):
    path = store(tmp_path, login_hourly=2, hourly=100)
    for _ in range(2):
        quotas.charge(path, "news@a.test", 1, NOW, login="News@a.test")
    with pytest.raises(quotas.OverQuota) as over:
        quotas.charge(path, "news@a.test", 1, NOW, login="news@a.test")
    assert over.value.status == "4.7.1" and "per login" in over.value.text
    assert 0 < over.value.retry_after <= 3600
    assert quotas.refusals(path) == {("org:1", "login_hourly"): 1}
    quotas.charge(path, "news@a.test", 1, NOW, login="other@a.test")  # another login may
    quotas.charge(path, "news@a.test", 1, NOW)  # and the send API (no login) is not bound by it
    quotas.charge(path, "news@a.test", 1, NOW + 3600, login="news@a.test")  # the next hour


def test_it_prunes_usage_periods_nobody_reads_again(tmp_path):
    path = store(tmp_path, hourly=100)
    quotas.charge(path, "news@a.test", 1, NOW - 3 * 86400, login="x@a.test")
    quotas.charge(path, "news@a.test", 1, NOW)
    conn = sqlite3.connect(path)
    periods = {p for (p,) in conn.execute("SELECT period FROM usage")}
    conn.close()
    assert periods == {f"h:{int(NOW // 3600)}", f"d:{int(NOW // 86400)}"}


def test_it_adds_the_new_columns_to_a_store_of_the_first_release(tmp_path):
    path = tmp_path / quotas.QUOTAS_DB
    path.parent.mkdir(parents=True)
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE limits (sender_domain TEXT NOT NULL, scope TEXT NOT NULL, "
                 "max_recipients INTEGER, hourly INTEGER, daily INTEGER, "
                 "PRIMARY KEY (sender_domain, scope))")
    conn.execute("INSERT INTO limits VALUES ('a.test', 'org:1', NULL, 1, NULL)")
    conn.commit()
    conn.close()
    quotas.charge(path, "news@a.test", 1, NOW)
    with pytest.raises(quotas.OverQuota):
        quotas.charge(path, "news@a.test", 1, NOW)


def test_it_reports_a_hand_edited_row_as_a_difference_and_repairs_it(tmp_path):
    snap = outbound.OutboundSnap(
        suppressions=frozenset({("a.test", "gone@b.example", "hard_bounce")}),
        app_senders=frozenset({("app-1", "{BLF-CRYPT}x")}),
        app_sender_addresses=frozenset({("alerts@a.test", "app-1")}))
    assert outbound.apply(tmp_path, snap).count == 3
    assert outbound.apply(tmp_path, snap).count == 0
    conn = sqlite3.connect(tmp_path / "senders/senders.sqlite")
    conn.execute("INSERT INTO app_sender_addresses VALUES ('ceo@a.test', 'app-1')")  # by hand
    conn.commit()
    conn.close()
    assert outbound.apply(tmp_path, snap, dry_run=True).describe() == [
        "- app_sender_addresses ('ceo@a.test', 'app-1')"]
    assert outbound.apply(tmp_path, snap).count == 1
    assert outbound.apply(tmp_path, snap).count == 0


def test_it_prunes_forwarded_events_and_never_reuses_their_ids(tmp_path):
    log, db = tmp_path / "postfix.log", tmp_path / "events.sqlite"
    msg = "0123456789abcdef0123456789abcdef"
    lines = [f"Dec 01 15:31:00 mail postfix/qmgr[10]: 4AB: from=<bounces+{msg}@a.test>, "
             "size=9, nrcpt=1 (queue active)"] + [
        f"Dec 01 15:31:0{i} mail postfix/smtp[20]: 4AB: to=<x@b.example>, relay=none, "
        f"delay={delay}, delays=0/0/0.5/0, dsn=4.4.1, status=deferred (connect refused)"
        for i, delay in enumerate(("0.5", "900", "86400"))]
    log.write_text("".join(line + "\n" for line in lines[:3]))
    follow(log, db, backoff=(300, 4000))
    assert prune_forwarded(db, 1) == 1  # the portal collected event 1
    with log.open("a") as handle:
        handle.write(lines[3] + "\n")
    follow(log, db, backoff=(300, 4000))
    conn = sqlite3.connect(db)
    rows = conn.execute("SELECT id, at, next_attempt FROM events ORDER BY id").fetchall()
    conn.close()
    assert [r[0] for r in rows] == [2, 3]
    # The time in the queue is the backoff, within minimal and maximal_backoff_time.
    assert [_seconds(r[2]) - _seconds(r[1]) for r in rows] == [900, 4000]


def _seconds(iso: str) -> float:
    return dt.datetime.fromisoformat(iso).timestamp()
