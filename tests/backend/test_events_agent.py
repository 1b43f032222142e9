"""The event agent's log follower and bounce parser, on files (no daemons)."""

import json

from mailhost.backend.events import delivery_counters, dsn_events, follow, record_bounce
from tests.backend.event_store import log_text, store_rows

MSG = "0123456789abcdef0123456789abcdef"
LINES = [
    f"Dec 01 15:31:00 mail postfix/qmgr[10]: 4AB: from=<bounces+{MSG}@a.test>, size=900, "
    "nrcpt=2 (queue active)",
    "Dec 01 15:31:00 mail postfix/qmgr[10]: 5CD: from=<someone@a.test>, size=9, nrcpt=1 "
    "(queue active)",
    "Dec 01 15:31:01 mail postfix/smtp[20]: Untrusted TLS connection established to "
    "mx.b.example[192.0.2.1]:25: TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)",
    "Dec 01 15:31:01 mail postfix/smtp[20]: 4AB: to=<x@b.example>, relay=mx.b.example"
    "[192.0.2.1]:25, delay=1, delays=0/0/0/1, dsn=2.0.0, status=sent (250 2.0.0 Ok)",
    "Dec 01 15:31:01 mail postfix/smtp[21]: 4AB: to=<y@b.example>, relay=none, delay=1, "
    "delays=0/0/1/0, dsn=4.4.1, status=deferred (connect to b.example: Connection refused)",
    "Dec 01 15:31:01 mail postfix/smtp[22]: 5CD: to=<z@b.example>, relay=mx.b.example"
    "[192.0.2.1]:25, delay=1, delays=0/0/0/1, dsn=2.0.0, status=sent (250 2.0.0 Ok)",
    "Dec 01 15:41:01 mail postfix/qmgr[10]: 4AB: from=<bounces+" + MSG + "@a.test>, "
    "status=expired, returned to sender",
]


def events(db) -> list[tuple]:
    return store_rows(db, "SELECT message, recipient, status, dsn, tls FROM events ORDER BY id")


def test_it_records_each_attempt_once_across_partial_lines_and_restarts(tmp_path):
    log, db = tmp_path / "postfix.log", tmp_path / "events.sqlite"
    text = log_text(*LINES)
    cut = text.index("status=sent") + 5  # a line still being written
    log.write_text(text[:cut])
    follow(log, db)
    assert [e[2] for e in events(db)] == []  # the TLS line is kept, the half line waits
    with log.open("a") as handle:
        handle.write(text[cut:])
    follow(log, db)
    follow(log, db)  # nothing new: nothing doubled
    assert events(db) == [
        (MSG, "x@b.example", "delivered", "2.0.0",
         "Untrusted TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)"),
        (MSG, "y@b.example", "deferred", "4.4.1", ""),
        (MSG, "", "expired", "", ""),
    ]


def test_it_reads_a_rotated_log_from_its_start(tmp_path):
    log, db = tmp_path / "postfix.log", tmp_path / "events.sqlite"
    log.write_text(log_text(*LINES[:4]))
    follow(log, db)
    log.unlink()
    log.write_text(log_text(LINES[0], LINES[4]))
    follow(log, db)
    assert [e[2] for e in events(db)] == ["delivered", "deferred"]


def test_it_parses_a_delivery_status_notification(tmp_path):
    dsn = (
        b"Subject: Undelivered\r\nMIME-Version: 1.0\r\nContent-Type: multipart/report; "
        b"report-type=delivery-status; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: "
        b"message/delivery-status\r\n\r\nReporting-MTA: dns; m\r\n\r\n"
        b"Final-Recipient: rfc822; X@B.example\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        b"Diagnostic-Code: smtp; 550 5.1.1 no such user\r\n\r\n--b--\r\n"
    )
    assert dsn_events(dsn) == [{"recipient": "X@B.example", "status": "bounced",
                                "dsn": "5.1.1", "reply": "550 5.1.1 no such user",
                                "relay": ""}]
    assert dsn_events(b"Subject: out of office\r\n\r\nhi\r\n")[0]["recipient"] == ""
    db = tmp_path / "events.sqlite"
    assert record_bounce(db, [f"bounces+{MSG}@a.test", "other@a.test"], dsn) == 1
    assert events(db) == [(MSG, "x@b.example", "bounced", "5.1.1", "")]


SUBMITTED = [
    "Dec 01 15:32:00 mail postfix/smtpd[30]: 7EF: client=localhost[127.0.0.1], "
    "sasl_method=PLAIN, sasl_username=app-acme-alerts",
    "Dec 01 15:32:00 mail postfix/cleanup[31]: 7EF: message-id=<m1@a.test>",
    "Dec 01 15:32:00 mail postfix/qmgr[10]: 7EF: from=<Alerts@a.test>, size=512, nrcpt=1 "
    "(queue active)",
    "Dec 01 15:32:01 mail postfix/smtp[32]: 7EF: to=<ops@b.example>, relay=mx.b.example"
    "[192.0.2.1]:25, delay=1, delays=0/0/0/1, dsn=2.0.0, status=sent (250 2.0.0 Ok)",
    "Dec 01 15:32:01 mail postfix/qmgr[10]: 7EF: removed",
    "Dec 01 15:33:00 mail postfix/pickup[40]: 8AA: uid=1001 from=<backup>",
    "Dec 01 15:33:00 mail postfix/cleanup[31]: 8AA: message-id=<m2@a.test>",
    "Dec 01 15:33:00 mail postfix/qmgr[10]: 8AA: from=<backup@a.test>, size=300, nrcpt=1 "
    "(queue active)",
    "Dec 01 15:33:00 mail postfix/qmgr[10]: 8AA: from=<backup@a.test>, size=300, nrcpt=1 "
    "(queue active)",  # a deferred message comes back to the active queue: not a new one
]


def test_it_records_smtp_and_sendmail_submissions_as_messages(tmp_path):
    log, db = tmp_path / "postfix.log", tmp_path / "events.sqlite"
    log.write_text(log_text(*SUBMITTED))
    follow(log, db)
    rows = store_rows(db, "SELECT message, recipient, status, reply, source FROM events "
                          "ORDER BY id")
    (smtp, _, queued, detail, source), delivered, (pickup, _, _, local, _) = rows
    assert (queued, source) == ("queued", "sub") and len(smtp) == 32
    assert json.loads(detail) == {"sender": "alerts@a.test", "login": "app-acme-alerts",
                                  "via": "smtp", "message_id": "<m1@a.test>", "size": 512,
                                  "queue_id": "7EF"}
    assert delivered[:3] == (smtp, "ops@b.example", "delivered")
    assert json.loads(local)["login"] == "uid 1001" and json.loads(local)["via"] == "sendmail"
    assert pickup != smtp


def test_it_counts_every_attempt_by_agent_and_outcome_once_across_restarts(tmp_path):
    log, db = tmp_path / "postfix.log", tmp_path / "events.sqlite"
    assert delivery_counters(db) == {}  # no store yet: nothing, not an error
    lmtp = ("Dec 01 15:32:00 mail postfix/lmtp[30]: 7EF: to=<c@a.test>, relay=mail[private/"
            "dovecot-lmtp], delay=0.1, delays=0/0/0/0.1, dsn=2.0.0, status=sent (250 2.0.0 Ok)")
    odd = ("Dec 01 15:32:01 mail postfix/custom-agent[31]: 7F0: to=<d@a.test>, relay=x, "
           "delay=1, delays=0/0/0/1, dsn=5.0.0, status=bounced (no)")
    log.write_text(log_text(*LINES, lmtp, odd))
    follow(log, db)
    follow(log, db)  # nothing new: nothing counted twice
    # Every message counts (5CD has no VERP sender and is no event), agents outside the
    # known few are "other", so the labels stay few.
    assert delivery_counters(db) == {("smtp", "sent"): 2, ("smtp", "deferred"): 1,
                                     ("lmtp", "sent"): 1, ("other", "bounced"): 1}
