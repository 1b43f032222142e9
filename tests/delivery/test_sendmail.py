"""`sendmail -t -i` on the mail host (mailhost.backend.sendmail): a service's message goes
through SMTP submission with an application sender's login, so it is DKIM-signed, held to the
login's From addresses and the suppression list, and recorded in Sent mail."""

import subprocess
import sys

import dkim
import pytest

from delivery.models import Message
from delivery.tasks import collect_events
from nodes.reconcile import reconcile_incremental
from tests.delivery.support import internet_address, published_txt
from tests.stack import wait_for

pytestmark = pytest.mark.stack


def sendmail(config, message: str, *args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mailhost.backend.sendmail", "-t", "-i", "--config", str(config),
         *args], input=message.encode(), capture_output=True, timeout=60, check=False)


def test_a_service_sends_with_sendmail_held_to_the_same_rules(sender, stack_node, mail_stack,
                                                              internet, tmp_path):
    hosted, client = sender()
    alerts = hosted.address("alerts")
    created = client.post("/app-senders", {"name": "cron", "addresses": [alerts]}).json()
    reconcile_incremental(stack_node)
    host, port = mail_stack.address("submission")
    config = tmp_path / "sendmail.conf"
    config.write_text(f"# the cron jobs' sender\nlogin = {created['login']}\n"
                      f"password = {created['password']}\nhost = {host}\nport = {port}\n")
    to, hidden = internet_address("ops"), internet_address("audit")

    done = sendmail(config, f"From: Cron <{alerts}>\nTo: {to}\nBcc: {hidden}\n"
                            "Subject: nightly backup\n\nAll good.\n.\nStill the body.\n")
    assert done.returncode == 0, done.stderr
    (received,) = wait_for(lambda: internet.received_by(to), timeout=30)
    assert wait_for(lambda: internet.received_by(hidden), timeout=30)
    assert dkim.verify(received.data, dnsfunc=published_txt(mail_stack))
    assert b"Bcc" not in received.data and b"\r\n.\r\nStill the body." in received.data

    outside = sendmail(config, f"From: {hosted.address('news')}\nTo: {to}\nSubject: x\n\nx\n")
    assert outside.returncode == 69 and b"not owned by user" in outside.stderr

    dead = internet_address("gone")
    client.post("/suppressions", {"value": dead})
    reconcile_incremental(stack_node)
    suppressed = sendmail(config, f"From: {alerts}\nTo: {dead}\nSubject: y\n\ny\n")
    assert suppressed.returncode == 67 and b"5.1.1" in suppressed.stderr

    def recorded():
        collect_events()
        return Message.objects.filter(sender=alerts, recipients__address=to,
                                      recipients__status="delivered").first()

    message = wait_for(recorded, timeout=40, interval=0.2)
    assert message.via == "smtp" and message.login == created["login"]
    (listed,) = client.get("/app-senders").json()
    assert listed["last_used_at"] is not None  # its use, from the node's log


def test_it_says_what_is_wrong_with_its_configuration(tmp_path):
    missing = sendmail(tmp_path / "nothing.conf", "To: a@b.example\n\nx\n")
    assert missing.returncode == 78 and b"cannot read" in missing.stderr
    (tmp_path / "half.conf").write_text("login = app-x\n")
    half = sendmail(tmp_path / "half.conf", "To: a@b.example\n\nx\n")
    assert half.returncode == 78 and b"password are required" in half.stderr
