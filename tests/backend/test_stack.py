"""The real stack, without the reconciler: rows go straight into the lookup store, keys and Sieve
scripts straight into the state dir. Proves the static configuration does what the design
promises: logins, delivery, aliases, relay refusal, sender ownership, DKIM, Sieve, quota, and a
clean start/stop."""

import os
import pickle
import pwd
import re
import shutil
import smtplib
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import dkim
import pytest
from django.core.management import call_command

from identity.dkim import generate_rsa_key
from mailhost.backend.config import MAIL_GID, MAIL_UID, OPENDKIM_USER, PORT_NAMES
from mailhost.backend.files import write_atomic
from mailhost.backend.stack import DAEMONS, Stack
from mailhost.passwords import hash_password
from tests.stack import (
    fetch_inbox,
    fetch_inbox_raw,
    free_ports,
    imap_login,
    make_message,
    make_state_dir,
    smtp_send,
    stack_config,
    unique_domain,
    wait_for,
)

pytestmark = pytest.mark.stack

PASSWORD = "mailbox-password-1"


# --- writing the lookup store and the state dir directly (the reconciler's job elsewhere) ---


def _execute(stack: Stack, sql: str, *params) -> None:
    conn = sqlite3.connect(stack.cfg.lookup_db, timeout=30)
    try:
        with conn:
            conn.execute(sql, params)
    finally:
        conn.close()


def add_domain(stack: Stack, name: str) -> None:
    _execute(stack, "INSERT INTO domains (src, name) VALUES ('test', ?)", name)


def add_mailbox(
    stack: Stack,
    address: str,
    password: str = PASSWORD,
    *,
    can_login: int = 1,
    can_receive: int = 1,
    quota_bytes: int = 0,
    owns_itself: bool = True,
) -> str:
    home = address.replace("@", "_at_")
    _execute(
        stack,
        "INSERT INTO mailboxes (src, address, password, home, quota_bytes, can_login, "
        "can_receive) VALUES ('test', ?, ?, ?, ?, ?, ?)",
        address, hash_password(password, rounds=4), home, quota_bytes, can_login, can_receive,
    )
    if owns_itself:
        add_sender_login(stack, address, address)
    return home


def add_app_password(stack: Stack, address: str, password: str) -> None:
    _execute(
        stack,
        "INSERT INTO app_passwords (src, address, password) VALUES ('test', ?, ?)",
        address, hash_password(password, rounds=4),
    )


def add_alias(stack: Stack, address: str, destinations: str) -> None:
    _execute(
        stack,
        "INSERT INTO aliases (src, address, destinations) VALUES ('test', ?, ?)",
        address, destinations,
    )


def add_sender_login(stack: Stack, address: str, login: str) -> None:
    _execute(
        stack, "INSERT INTO sender_logins (src, address, login) VALUES ('test', ?, ?)",
        address, login,
    )


def subjects(stack: Stack, user: str) -> list[str]:
    return [str(msg["Subject"]) for msg in fetch_inbox(stack, user, PASSWORD)]


def postfix_log(stack: Stack) -> str:
    return stack.log_file("postfix").read_text(errors="replace")


def write_sieve(stack: Stack, home: str, script: str) -> None:
    home_dir = stack.cfg.home_dir(home)
    home_dir.mkdir(mode=0o700, exist_ok=True)
    os.chown(home_dir, MAIL_UID, MAIL_GID)
    write_atomic(home_dir / ".dovecot.sieve", script.encode(), mode=0o600, uid=MAIL_UID,
                 gid=MAIL_GID)


# --- logins ----------------------------------------------------------------------------------


def test_it_logs_in_with_the_mailbox_password(mail_stack):
    address = f"alice@{unique_domain()}"
    add_mailbox(mail_stack, address)

    assert imap_login(mail_stack, address, PASSWORD)
    assert imap_login(mail_stack, address.upper(), PASSWORD)  # logins are case-insensitive


def test_it_logs_in_with_any_app_password(mail_stack):
    address = f"bob@{unique_domain()}"
    add_mailbox(mail_stack, address)
    add_app_password(mail_stack, address, "first-app-password")
    add_app_password(mail_stack, address, "second-app-password")

    assert imap_login(mail_stack, address, "first-app-password")
    assert imap_login(mail_stack, address, "second-app-password")
    assert imap_login(mail_stack, address, PASSWORD)
    assert not imap_login(mail_stack, address, "third-app-password")


def test_it_refuses_a_wrong_password_without_slowing_the_next_login(mail_stack):
    address = f"carol@{unique_domain()}"
    add_mailbox(mail_stack, address)

    assert not imap_login(mail_stack, address, "not-the-password")
    assert not imap_login(mail_stack, f"nobody@{unique_domain()}", PASSWORD)

    # Dovecot's anvil keeps the penalty that would delay the next login from this address; the
    # dev stack records none (its speed is for `make bench`, not an assertion here).
    penalties = subprocess.run(
        ["doveadm", "-c", str(mail_stack.dovecot_conf), "penalty"],
        capture_output=True, text=True, check=True,
    ).stdout
    assert "127.0.0.1" not in penalties, penalties
    assert imap_login(mail_stack, address, PASSWORD)


def test_it_refuses_login_when_can_login_is_0(mail_stack):
    address = f"dave@{unique_domain()}"
    add_mailbox(mail_stack, address, can_login=0)
    add_app_password(mail_stack, address, "an-app-password")

    assert not imap_login(mail_stack, address, PASSWORD)
    assert not imap_login(mail_stack, address, "an-app-password")


def test_it_refuses_smtp_auth_with_a_wrong_password(mail_stack):
    address = f"erin@{unique_domain()}"
    add_mailbox(mail_stack, address)

    with pytest.raises(smtplib.SMTPAuthenticationError):
        smtp_send(mail_stack, "submission", address, address, make_message(address, address, "x"),
                  login=(address, "not-the-password"))


# --- delivery and aliases --------------------------------------------------------------------


def test_it_delivers_inbound_mail_to_the_maildir(mail_stack):
    domain = unique_domain()
    add_domain(mail_stack, domain)
    address = f"frank@{domain}"
    home = add_mailbox(mail_stack, address)

    code, _ = smtp_send(mail_stack, "smtp", "someone@far.test", address,
                        make_message("someone@far.test", address, "inbound"))

    assert code == 250
    assert wait_for(lambda: subjects(mail_stack, address)) == ["inbound"]
    new = stack_maildir_new(mail_stack, home)
    assert len(list(new.iterdir())) == 1
    assert new.stat().st_uid == MAIL_UID


def stack_maildir_new(stack: Stack, home: str) -> Path:
    return stack.cfg.home_dir(home) / "Maildir" / "new"


def test_it_gives_a_catch_all_the_unknown_users_but_mailboxes_keep_their_mail(mail_stack):
    domain = unique_domain()
    add_domain(mail_stack, domain)
    real, catch_all = f"grace@{domain}", f"catchall@{domain}"
    add_mailbox(mail_stack, real)
    add_mailbox(mail_stack, catch_all)
    add_alias(mail_stack, f"@{domain}", catch_all)

    smtp_send(mail_stack, "smtp", "x@far.test", f"unknown@{domain}",
              make_message("x@far.test", f"unknown@{domain}", "to unknown"))
    smtp_send(mail_stack, "smtp", "x@far.test", real, make_message("x@far.test", real, "to real"))

    assert wait_for(lambda: subjects(mail_stack, real)) == ["to real"]
    assert wait_for(lambda: subjects(mail_stack, catch_all)) == ["to unknown"]


def test_it_expands_an_alias_to_several_mailboxes(mail_stack):
    domain = unique_domain()
    add_domain(mail_stack, domain)
    one, two = f"one@{domain}", f"two@{domain}"
    add_mailbox(mail_stack, one)
    add_mailbox(mail_stack, two)
    add_alias(mail_stack, f"team@{domain}", f"{one},{two}")

    smtp_send(mail_stack, "smtp", "x@far.test", f"team@{domain}",
              make_message("x@far.test", f"team@{domain}", "to team"))

    assert wait_for(lambda: subjects(mail_stack, one)) == ["to team"]
    assert wait_for(lambda: subjects(mail_stack, two)) == ["to team"]


def test_it_refuses_unknown_and_disabled_recipients_at_rcpt(mail_stack):
    domain = unique_domain()
    add_domain(mail_stack, domain)
    disabled = f"henry@{domain}"
    add_mailbox(mail_stack, disabled, can_receive=0)

    for rcpt in (disabled, f"nobody@{domain}"):
        with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
            smtp_send(mail_stack, "smtp", "x@far.test", rcpt, make_message("x@far.test", rcpt, "x"))
        assert refused.value.recipients[rcpt][0] == 550


def test_it_keeps_a_disabled_mailbox_from_the_catch_all_and_from_aliases(mail_stack):
    domain = unique_domain()
    add_domain(mail_stack, domain)
    disabled, catch_all = f"iris@{domain}", f"catchall@{domain}"
    disabled_home = add_mailbox(mail_stack, disabled, can_receive=0)
    add_mailbox(mail_stack, catch_all)
    add_alias(mail_stack, f"@{domain}", catch_all)
    add_alias(mail_stack, f"group@{domain}", f"{disabled},{catch_all}")

    with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        smtp_send(mail_stack, "smtp", "x@far.test", disabled,
                  make_message("x@far.test", disabled, "direct"))
    assert refused.value.recipients[disabled][0] == 550
    smtp_send(mail_stack, "smtp", "", f"group@{domain}",
              make_message("x@far.test", f"group@{domain}", "via alias"))

    assert wait_for(lambda: subjects(mail_stack, catch_all)) == ["via alias"]
    assert wait_for(lambda: re.search(
        rf"to=<{re.escape(disabled)}>.*status=bounced", postfix_log(mail_stack)))
    assert not stack_maildir_new(mail_stack, disabled_home).exists()


def test_it_still_delivers_to_a_suspended_mailbox(mail_stack):
    domain = unique_domain()
    add_domain(mail_stack, domain)
    suspended = f"ivan@{domain}"
    home = add_mailbox(mail_stack, suspended, can_login=0)

    smtp_send(mail_stack, "smtp", "x@far.test", suspended,
              make_message("x@far.test", suspended, "while suspended"))

    assert wait_for(lambda: list(stack_maildir_new(mail_stack, home).glob("*")))


# --- relay and sender ownership --------------------------------------------------------------


def test_it_is_not_an_open_relay(mail_stack):
    with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        smtp_send(mail_stack, "smtp", "spammer@far.test", "victim@elsewhere.test",
                  make_message("spammer@far.test", "victim@elsewhere.test", "spam"))
    code, text = refused.value.recipients["victim@elsewhere.test"]
    assert 500 <= code < 600
    assert b"Relay access denied" in text


def test_it_refuses_unauthenticated_submission(mail_stack):
    domain = unique_domain()
    add_domain(mail_stack, domain)
    address = f"judy@{domain}"
    add_mailbox(mail_stack, address)

    with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        smtp_send(mail_stack, "submission", address, "x@elsewhere.test",
                  make_message(address, "x@elsewhere.test", "x"))
    assert 500 <= refused.value.recipients["x@elsewhere.test"][0] < 600


def test_it_refuses_to_send_as_an_address_the_login_does_not_own(mail_stack):
    domain = unique_domain()
    add_domain(mail_stack, domain)
    mallory, victim = f"mallory@{domain}", f"victim@{domain}"
    add_mailbox(mail_stack, mallory)
    add_mailbox(mail_stack, victim)

    for port in ("submission", "submissions"):
        for sender in (victim, "someone@far.test"):
            with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
                smtp_send(mail_stack, port, sender, "x@elsewhere.test",
                          make_message(sender, "x@elsewhere.test", "forged"),
                          login=(mallory, PASSWORD))
            code, text = refused.value.recipients["x@elsewhere.test"]
            assert code == 553 and b"not owned by user" in text


def test_it_lets_an_authenticated_user_send_as_its_own_addresses(mail_stack):
    domain = unique_domain()
    add_domain(mail_stack, domain)
    sender, shared, rcpt = f"kim@{domain}", f"sales@{domain}", f"lee@{domain}"
    add_mailbox(mail_stack, sender)
    add_mailbox(mail_stack, rcpt)
    add_sender_login(mail_stack, shared, sender)  # kim may also send as sales@

    for port, from_ in (("submission", sender), ("submissions", shared)):
        code, _ = smtp_send(mail_stack, port, from_, rcpt, make_message(from_, rcpt, port),
                            login=(sender, PASSWORD))
        assert code == 250
    assert sorted(wait_for(lambda: len(subjects(mail_stack, rcpt)) == 2
                           and subjects(mail_stack, rcpt))) == ["submission", "submissions"]


# --- DKIM ------------------------------------------------------------------------------------


def reload_opendkim_without_ptrace(stack: Stack) -> None:
    """The reload as a container's root sends it: Docker's default capabilities lack
    CAP_SYS_PTRACE, which /proc/<pid>/exe of a daemon that dropped to its own user asks for."""
    reload = ("import pickle, sys; from mailhost.backend.stack import Stack; "
              "stack = Stack(pickle.load(sys.stdin.buffer)); "
              "sys.exit(stack.reload('opendkim') if stack.is_running() else 'not running')")
    subprocess.run(["setpriv", "--bounding-set=-sys_ptrace", "--inh-caps=-sys_ptrace",
                    sys.executable, "-c", reload], input=pickle.dumps(stack.cfg),
                   cwd=Path(__file__).resolve().parents[2], capture_output=True, check=True)


def install_dkim_key(stack: Stack, domain: str, selector: str, reload=Stack.reload_opendkim) -> str:
    """Key, KeyTable and SigningTable lines as the reconciler writes them; returns the p= value."""
    private_pem, public_b64 = generate_rsa_key()
    owner = pwd.getpwnam(OPENDKIM_USER)
    key_path = stack.cfg.dkim_key_path(domain, selector)
    write_atomic(key_path, private_pem, mode=0o600, uid=owner.pw_uid, gid=owner.pw_gid)
    name = f"{selector}._domainkey.{domain}"
    key_table = stack.cfg.opendkim_key_table
    signing_table = stack.cfg.opendkim_signing_table
    write_atomic(key_table, key_table.read_bytes()
                 + f"{name} {domain}:{selector}:{key_path}\n".encode(), mode=0o644)
    write_atomic(signing_table, signing_table.read_bytes()
                 + f"{domain} {name}\n".encode(), mode=0o644)
    reload(stack)
    return public_b64


@pytest.mark.parametrize("reload", [Stack.reload_opendkim, reload_opendkim_without_ptrace],
                         ids=["root", "root-without-ptrace"])
def test_it_signs_submitted_mail_with_the_domains_dkim_key(mail_stack, reload):
    domain = unique_domain()
    add_domain(mail_stack, domain)
    sender, rcpt = f"mona@{domain}", f"ned@{domain}"
    add_mailbox(mail_stack, sender)
    add_mailbox(mail_stack, rcpt)
    public_b64 = install_dkim_key(mail_stack, domain, "mh20260101", reload)
    txt = f"v=DKIM1; k=rsa; p={public_b64}".encode()

    def dns(name, timeout=5):
        return txt if name.rstrip(b".") == f"mh20260101._domainkey.{domain}".encode() else None

    def signed_message_arrived():
        # USR1 is handled asynchronously: resend until the reloaded table is in use.
        smtp_send(mail_stack, "submission", sender, rcpt, make_message(sender, rcpt, "signed"),
                  login=(sender, PASSWORD))
        raw = wait_for(lambda: fetch_inbox_raw(mail_stack, rcpt, PASSWORD))[-1]
        return raw if b"DKIM-Signature:" in raw else None

    raw = wait_for(signed_message_arrived, timeout=15, interval=0.2)

    signature = re.search(rb"DKIM-Signature:.*?(?=\r\n\S)", raw, re.S).group(0)
    assert f"d={domain}".encode() in signature and b"s=mh20260101" in signature
    assert dkim.verify(raw, dnsfunc=dns)


def test_it_refuses_rather_than_sends_unsigned_when_the_key_is_broken(mail_stack):
    domain = unique_domain()
    add_domain(mail_stack, domain)
    sender = f"olga@{domain}"
    add_mailbox(mail_stack, sender)
    install_dkim_key(mail_stack, domain, "broken")
    write_atomic(mail_stack.cfg.dkim_key_path(domain, "broken"), b"not a key\n", mode=0o600)

    def refused():
        try:
            smtp_send(mail_stack, "submission", sender, sender, make_message(sender, sender, "x"),
                      login=(sender, PASSWORD))
        except smtplib.SMTPDataError as exc:
            return exc.smtp_code
        return None

    assert 400 <= wait_for(refused, timeout=15, interval=0.2) < 500
    assert re.search(r"milter-reject: END-OF-MESSAGE.*4\.7\.1", postfix_log(mail_stack))
    key = mail_stack.cfg.dkim_key_path(domain, "broken")
    assert f"KeyTable broken._domainkey.{domain}: {key} is not an unencrypted PEM private key" in (
        mail_stack.dkim_problems()
    )


def test_it_reports_no_dkim_problem_for_a_good_key(mail_stack):
    domain = unique_domain()
    install_dkim_key(mail_stack, domain, "good")

    assert not [p for p in mail_stack.dkim_problems() if domain in p]


# --- Sieve and quota -------------------------------------------------------------------------


def test_it_runs_a_sieve_redirect(mail_stack):
    domain = unique_domain()
    add_domain(mail_stack, domain)
    forwarder, target = f"paul@{domain}", f"quinn@{domain}"
    home = add_mailbox(mail_stack, forwarder)
    add_mailbox(mail_stack, target)
    write_sieve(mail_stack, home, f'redirect "{target}";\n')

    smtp_send(mail_stack, "smtp", "x@far.test", forwarder,
              make_message("x@far.test", forwarder, "forward me"))

    [forwarded] = wait_for(lambda: fetch_inbox(mail_stack, target, PASSWORD))
    assert forwarded["Subject"] == "forward me"
    assert forwarded["Return-Path"] == f"<{forwarder}>"  # sieve_redirect_envelope_from
    assert subjects(mail_stack, forwarder) == []


def test_it_sends_a_sieve_vacation_reply(mail_stack):
    domain = unique_domain()
    add_domain(mail_stack, domain)
    away, sender = f"rita@{domain}", f"sam@{domain}"
    home = add_mailbox(mail_stack, away)
    add_mailbox(mail_stack, sender)
    write_sieve(mail_stack, home,
                'require "vacation";\nvacation :days 1 :subject "Away" "Back on Monday.";\n')

    smtp_send(mail_stack, "smtp", sender, away, make_message(sender, away, "are you there?"))

    assert wait_for(lambda: subjects(mail_stack, away)) == ["are you there?"]
    [reply] = wait_for(lambda: fetch_inbox(mail_stack, sender, PASSWORD))
    assert reply["Subject"] == "Away"
    assert "Back on Monday." in reply.get_content()


def test_it_refuses_delivery_over_quota(mail_stack):
    domain = unique_domain()
    add_domain(mail_stack, domain)
    small, roomy = f"tina@{domain}", f"uma@{domain}"
    small_home = add_mailbox(mail_stack, small, quota_bytes=4096)
    add_mailbox(mail_stack, roomy, quota_bytes=10 * 1024 * 1024)
    big = "x" * 20_000 + "\n"

    for rcpt in (small, roomy):
        smtp_send(mail_stack, "smtp", "", rcpt, make_message("x@far.test", rcpt, "big", big))

    assert wait_for(lambda: subjects(mail_stack, roomy)) == ["big"]
    assert wait_for(lambda: re.search(
        rf"to=<{re.escape(small)}>.*status=bounced.*[Qq]uota", postfix_log(mail_stack)))
    assert not list(stack_maildir_new(mail_stack, small_home).glob("*"))


# --- lifecycle -------------------------------------------------------------------------------


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"  # a zombie has exited; init reaps it when it gets round to it


def ehlo(stack: Stack) -> bytes:
    with smtplib.SMTP(*stack.address("smtp"), timeout=10) as client:
        return client.ehlo("client.stack.test")[1]


def test_it_starts_and_stops_through_the_management_command_leaving_no_process(settings, db):
    state_dir = make_state_dir()
    settings.MAILHOST_NODE_STATE_DIR = state_dir
    settings.MAILHOST_PORTS = dict(zip(PORT_NAMES, free_ports(len(PORT_NAMES)), strict=True))
    settings.MAILHOST_STACK_DEV = True
    try:
        call_command("stack", "start")
        stack = Stack(stack_config(state_dir, ports=settings.MAILHOST_PORTS))
        assert stack.is_running()
        first = stack.status()
        processes = stack.processes()
        assert len(processes) > 5

        call_command("stack", "start")  # idempotent: the same daemons keep running
        assert stack.status() == first

        settings.MAILHOST_MESSAGE_SIZE_LIMIT = 1234567
        call_command("stack", "start")  # a changed config is reloaded into the running daemons
        assert stack.status() == first
        assert wait_for(lambda: b"SIZE 1234567" in ehlo(stack))

        call_command("stack", "stop")
        assert stack.status() == dict.fromkeys(DAEMONS)
        assert not [pid for pid, _ in processes if _alive(pid)]
        leftover = subprocess.run(["pgrep", "-f", str(state_dir)], capture_output=True, text=True)
        assert [p for p in leftover.stdout.split() if _alive(int(p))] == []

        call_command("stack", "stop")  # idempotent
    finally:
        Stack(stack_config(state_dir, ports=settings.MAILHOST_PORTS)).stop()
        subprocess.run(["rm", "-rf", str(state_dir)], check=False)


def test_it_points_django_and_the_default_node_at_the_test_stack(stack_node, mail_stack):
    from mailhost.backend.config import NodeConfig
    from nodes.changes import node_default

    assert node_default().pk == stack_node.pk
    assert NodeConfig.from_settings(stack_node.state_dir) == mail_stack.cfg


def test_the_doveadm_server_answers_only_on_its_own_address():
    """An attacker who reaches the node's mail address (bind_address) finds no doveadm door
    when MAILHOST_DOVEADM_BIND_ADDRESS keeps it elsewhere; the other address does answer."""
    stack = Stack(stack_config(make_state_dir(), doveadm_bind_address="127.0.0.2"))
    try:
        stack.start()
        port = stack.cfg.ports["doveadm"]
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
        socket.create_connection(("127.0.0.2", port), timeout=5).close()
    finally:
        stack.stop()
        shutil.rmtree(stack.cfg.state_dir, ignore_errors=True)
