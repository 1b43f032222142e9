"""The inbound guard's reading of Rspamd's task log into mail-flow counters (pure parts and
the SQLite fold; the breaker itself is tested against the real resolver in tests/inbound/)."""

import sqlite3

from mailhost.backend.inbound_guard import fold_flow, outcome, parse_task_line

# Rspamd 3.4's task log lines, as its default log_format writes them (symbols shortened).
LINE = (
    "2026-12-01 13:42:23 #20956(rspamd_proxy) <4aa0a6>; proxy; rspamd_task_write_log: "
    "id: <x@vm>, qid: <41B0C20C34F>, ip: {ip}, from: <gt@zz.test>, (default: {flag} ({action}): "
    "[15.00/15.00] [GTUBE(0.00){{}}]), len: 301, time: 55.016ms, dns req: 0, digest: <67ad>, "
    "rcpts: <{rcpts}>, mime_rcpts: <ceo@vic.test>{forced}\n"
)


def line(action="no action", ip="192.0.2.61", rcpts="ceo@vic.test", forced=""):
    return LINE.format(ip=ip, flag="S", action=action, rcpts=rcpts, forced=forced)


def test_it_classifies_what_became_of_each_message():
    cases = {
        line(): "delivered",
        line("add header"): "junked",
        line("reject", forced=', forced: reject "Gtube pattern"; score=15.00 (set by GTUBE)'):
            "spam_rejected",
        line("reject", forced=', forced: reject "Action set by DMARC"; score=nan (set by dmarc)'):
            "dmarc_rejected",
        line("reject", forced=', forced: reject "x"; score=nan (set by force_actions)'):
            "policy_rejected",
        line("soft reject", forced=', forced: soft reject "Greylisted"; score=nan (set by '
                                   'greylist)'): "greylisted",
    }
    for text, expected in cases.items():
        day, record, domains = parse_task_line(text)
        assert (day, domains, outcome(record)) == ("2026-12-01", ["vic.test"], expected), text


def test_it_ignores_loopback_clients_and_other_lines():
    assert parse_task_line(line(ip="127.0.0.1")) is None
    assert parse_task_line("2026-12-01 13:42:22 #1(main) <x>; lua; neural.lua:821: hello\n") is None


def test_it_counts_each_recipient_domain_once_per_message():
    _, _, domains = parse_task_line(line(rcpts="a@one.test,b@TWO.test,c@one.test"))
    assert domains == ["one.test", "two.test"]


def test_it_folds_new_lines_only_and_starts_over_after_rotation(tmp_path):
    log, db = tmp_path / "rspamd.log", tmp_path / "flow.sqlite"
    log.write_text(line() + line("add header"))
    assert fold_flow(log, db) == 2
    assert fold_flow(log, db) == 0  # nothing new
    with log.open("a") as handle:
        handle.write(line() + "2026-12-01 13:42:23 partial line without its end")
    assert fold_flow(log, db) == 1  # the partial line waits for its newline
    log.unlink()
    log.write_text(line("add header"))  # rotated: a new file from the start
    assert fold_flow(log, db) == 1
    rows = dict(sqlite3.connect(db).execute("SELECT outcome, n FROM flow").fetchall())
    assert rows == {"delivered": 2, "junked": 2}
