"""Mail from "the internet" into the real stack, and the outside world it comes from.

Loopback clients count as local to Rspamd (no SPF, DMARC or greylisting for them), so the
harness presents another client address with Postfix's XCLIENT (allowed from 127.0.0.1 only,
MAILHOST_SMTP_XCLIENT_HOSTS in scripts/test.sh). Addresses come from 192.0.2.0/24 and
198.51.100.0/24 (documentation ranges): data in XCLIENT and zone files only, never a target.

Outside domains are fixture zones served by the node's own resolver (unbound in local mode):
`outside_zone` writes unbound local-data into the state dir's unbound/zones/ and reloads it.
"""

import email
import email.policy
import imaplib
import itertools
import os
import smtplib
import subprocess
import uuid
from dataclasses import dataclass
from email.message import EmailMessage, Message

import dns.message
import dns.query
import dns.rcode

from mailhost.backend.inbound import FIXTURE_ZONES_DIR
from mailhost.backend.stack import Stack
from tests.stack import _imap, make_message, wait_for

_ips = itertools.count(10)
GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"


def fresh_ip(prefix: str = "192.0.2") -> str:
    """An "internet" client address no other test of this process used (greylisting and
    rate limits are per address)."""
    n = next(_ips) + (os.getpid() % 50) * 4
    return f"{prefix}.{n % 250 + 1}" if prefix == "192.0.2" else f"{prefix}.{n % 250 + 1}"


@dataclass
class Client:
    """An outside mail server: its address, the name it says in HELO and its reverse DNS."""

    ip: str
    name: str


def send_from_internet(stack: Stack, client: Client, sender: str, to: str | list[str],
                       message: EmailMessage | bytes) -> tuple[int, bytes]:
    """One SMTP transaction on the MX port as `client`; raises like tests.stack.smtp_send."""
    recipients = [to] if isinstance(to, str) else list(to)
    data = message.as_bytes() if isinstance(message, EmailMessage) else message
    with smtplib.SMTP(*stack.address("smtp"), timeout=30) as smtp:
        smtp.ehlo("harness.stack.test")
        code, text = smtp.docmd(
            "XCLIENT", f"ADDR={client.ip} NAME={client.name} HELO={client.name}"
        )
        if code != 220:
            raise smtplib.SMTPResponseException(code, text)
        smtp.ehlo(client.name)
        code, text = smtp.mail(sender)
        if code != 250:
            raise smtplib.SMTPSenderRefused(code, text, sender)
        refused = {}
        for rcpt in recipients:
            code, text = smtp.rcpt(rcpt)
            if code not in (250, 251):
                refused[rcpt] = (code, text)
        if refused:
            raise smtplib.SMTPRecipientsRefused(refused)
        code, text = smtp.data(data)
        if code != 250:
            raise smtplib.SMTPDataError(code, text)
        return code, text


def deliver_from_internet(stack: Stack, client: Client, sender: str, to: str,
                          message: EmailMessage | bytes, timeout: float = 30) -> tuple[int, bytes]:
    """Like a real MTA: retry while greylisted (451 4.7.1), until accepted or refused."""

    def attempt():
        try:
            return send_from_internet(stack, client, sender, to, message)
        except smtplib.SMTPDataError as exc:
            if exc.smtp_code == 451 and b"Greylisted" in exc.smtp_error:
                return None
            raise

    return wait_for(attempt, timeout=timeout, interval=0.3)


def outside_zone(stack: Stack, name: str, lines: list[str]) -> None:
    """Serve `lines` (zone-file records) from the node's resolver as an outside domain."""
    body = "".join(f"  local-data: '{line}'\n" for line in lines)
    path = stack.cfg.path(f"{FIXTURE_ZONES_DIR}/{name}.conf")
    path.write_text(f"# test fixture zone {name}\n{body}")
    stack.reload_unbound()
    owner, _ttl, _class, rtype = lines[0].split()[:4]
    wait_for(lambda: resolves(stack, owner, rtype), timeout=10)


def remove_zone(stack: Stack, name: str) -> None:
    stack.cfg.path(f"{FIXTURE_ZONES_DIR}/{name}.conf").unlink(missing_ok=True)
    stack.reload_unbound()


def resolves(stack: Stack, name: str, rtype: str = "TXT") -> bool:
    query = dns.message.make_query(name, rtype)
    try:
        host, port = stack.address("resolver")
        reply = dns.query.udp(query, host, port=port, timeout=1)
    except Exception:
        return False
    return reply.rcode() == dns.rcode.NOERROR and bool(reply.answer)


def outside_server(stack: Stack, domain: str, ip: str) -> Client:
    """A mail server of an outside domain with forward and reverse DNS: mx.<domain> ↔ ip."""
    host = f"mx.{domain}"
    reverse = ".".join(reversed(ip.split("."))) + ".in-addr.arpa"
    outside_zone(stack, f"{domain}-host", [f"{host}. 300 IN A {ip}",
                                          f"{reverse}. 300 IN PTR {host}."])
    return Client(ip=ip, name=host)


def folder(stack: Stack, user: str, password: str, mailbox: str) -> list[Message]:
    client = _imap(stack)
    try:
        client.login(user, password)
        typ, _ = client.select(f'"{mailbox}"', readonly=True)
        if typ != "OK":
            return []
        _, data = client.search(None, "ALL")
        return [
            email.message_from_bytes(client.fetch(n, "(BODY.PEEK[])")[1][0][1],
                                     policy=email.policy.default)
            for n in data[0].split()
        ]
    finally:
        client.logout()


def in_folder(stack: Stack, user: str, password: str, mailbox: str, marker: str):
    return [m for m in folder(stack, user, password, mailbox) if marker in str(m["Subject"])]


def marked(prefix: str) -> str:
    return f"{prefix} {uuid.uuid4().hex[:10]}"


def message(sender: str, to: str, subject: str, body: str | None = None) -> EmailMessage:
    # Unique per message: greylisting and Bayes both remember bodies they have seen.
    text = (body or (
        "Hello, the minutes of Tuesday's meeting are attached below. We agreed to move the "
        "review to Thursday afternoon and to ask Maria for the figures before then.\n"
    )) + f"\nReference {uuid.uuid4().hex}\n"
    msg = make_message(sender, to, subject, text)
    del msg["Message-ID"]
    msg["Message-ID"] = f"<{uuid.uuid4().hex}@{sender.rpartition('@')[2]}>"
    return msg


def nothing_queued_for(stack: Stack, address: str) -> bool:
    out = subprocess.run(["postqueue", "-c", str(stack.postfix_dir), "-p"],
                         capture_output=True, text=True, check=True).stdout
    return address not in out


def auth_results(msg: Message) -> list[str]:
    return [str(v) for v in msg.get_all("Authentication-Results") or []]


def imap_move(stack: Stack, user: str, password: str, marker: str, source: str,
              target: str) -> None:
    client = _imap(stack)
    try:
        client.login(user, password)
        client.select(f'"{source}"')
        _, data = client.search(None, "SUBJECT", f'"{marker}"')
        nums = data[0].split()
        assert nums, f"no message {marker!r} in {source}"
        typ, detail = client.copy(b",".join(nums).decode(), f'"{target}"')
        assert typ == "OK", detail
    except imaplib.IMAP4.error as exc:
        raise AssertionError(exc) from None
    finally:
        client.logout()
