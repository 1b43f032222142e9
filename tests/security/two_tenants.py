"""Two tenants on the real stack, and what their victims see.

Organisation A (the victim) and organisation B (the attacker) each get a domain of their own,
created the real way (with its own DKIM key), mailboxes, and an alias of B's; the reconciler
puts them on the running test stack. Signatures are verified with dkimpy against the public
keys the portal stores and tells the operator to publish.
"""

import json
import re
import smtplib
import sqlite3
import subprocess
import uuid
from dataclasses import dataclass

import dkim

from mailboxes.services import alias_create, domain_create, mailbox_create
from mailhost.backend.stack import Stack
from nodes.reconcile import reconcile_incremental
from tenants.access import SYSTEM
from tests.factories import OrganisationFactory
from tests.stack import fetch_inbox_raw, make_message, smtp_send, unique_domain, wait_for

PASSWORD = "tenant password 1"


@dataclass
class Tenants:
    stack: Stack
    a: str  # A's domain (the victim's)
    b: str  # B's domain (the attacker's)
    txt: dict[str, str]  # "<selector>._domainkey.<domain>." → the TXT value the portal publishes

    # A's people: alice (whose address B wants to use), ceo (who reads what arrives).
    @property
    def alice(self) -> str:
        return f"alice@{self.a}"

    @property
    def ceo(self) -> str:
        return f"ceo@{self.a}"

    # B's people: bob (the attacker's login), carol (a colleague), sales@ (bob's alias).
    @property
    def bob(self) -> str:
        return f"bob@{self.b}"

    @property
    def carol(self) -> str:
        return f"carol@{self.b}"

    @property
    def sales(self) -> str:
        return f"sales@{self.b}"

    def dnsfunc(self, name: bytes, timeout: int = 5) -> bytes | None:
        value = self.txt.get(name.decode())
        return value.encode() if value else None

    def inbox(self, address: str, marker: str) -> list[bytes]:
        """Raw messages in `address`'s INBOX whose bytes contain `marker` (e.g. a subject)."""
        return [m for m in fetch_inbox_raw(self.stack, address, PASSWORD) if marker.encode() in m]

    def submit(self, port: str, login: str, sender: str, to: str, message) -> tuple[int, bytes]:
        return smtp_send(self.stack, port, sender, to, message, login=(login, PASSWORD))


def make_tenants(node, stack: Stack) -> Tenants:
    org_a, org_b = OrganisationFactory(), OrganisationFactory()
    domain_a = domain_create(actor=SYSTEM, organisation=org_a, name=unique_domain("vic"))
    domain_b = domain_create(actor=SYSTEM, organisation=org_b, name=unique_domain("att"))
    for domain, local in ((domain_a, "alice"), (domain_a, "ceo"), (domain_b, "bob"),
                          (domain_b, "carol")):
        mailbox_create(actor=SYSTEM, domain=domain, local_part=local, password=PASSWORD)
    alias_create(actor=SYSTEM, domain=domain_b, local_part="sales",
                 destinations=[f"bob@{domain_b.name}"])
    reconcile_incremental(node)
    txt = {
        f"{key.dns_name}.": key.txt_value
        for domain in (domain_a, domain_b)
        for key in domain.dkim_keys.filter(algorithm="rsa")
    }
    return Tenants(stack=stack, a=domain_a.name, b=domain_b.name, txt=txt)


def subject(prefix: str) -> str:
    return f"{prefix} {uuid.uuid4().hex[:12]}"


def signing_domains(raw: bytes) -> list[str]:
    """The d= of every DKIM-Signature field of a raw message."""
    fields = re.findall(rb"^DKIM-Signature:(.*?)(?=\r?\n\S)", raw, re.S | re.M)
    return [m.group(1).decode() for f in fields if (m := re.search(rb"\bd=([^;\s]+)", f))]


def from_fields(raw: bytes) -> list[str]:
    head = raw.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    return [v.decode(errors="replace").strip()
            for v in re.findall(rb"^From:(.*?)(?=\r?\n\S)", head + b"\r\nX", re.S | re.M)]


def nothing_queued_for(tenants: Tenants) -> bool:
    """No message for A's or B's people waits in Postfix's queue: whatever was accepted for
    them has been delivered. (Other tests of the session may leave mail for unreachable outside
    domains deferred in the same stack's queue; that is not ours to wait for.)"""
    output = subprocess.run(
        ["postqueue", "-c", str(tenants.stack.postfix_dir), "-j"],
        capture_output=True, text=True, check=True,
    ).stdout
    ours = (f"@{tenants.a}", f"@{tenants.b}")
    return not any(
        recipient["address"].endswith(ours)
        for entry in map(json.loads, filter(str.strip, output.splitlines()))
        for recipient in entry["recipients"]
    )


def send_until_signed(tenants: Tenants, port: str, login: str, sender: str, to: str,
                      from_header: str, prefix: str, **headers: str) -> bytes:
    """Submit a message the login may send until it arrives DKIM-signed, and return it.

    The reconciler has just written the new domains' keys and sent OpenDKIM SIGUSR1, which it
    handles asynchronously: the first message may leave before the tables are re-read."""

    def attempt() -> bytes | None:
        title = subject(prefix)
        message = make_message(from_header, to, title)
        for name, value in headers.items():
            message[name.replace("_", "-")] = value
        tenants.submit(port, login, sender, to, message)
        raw = wait_for(lambda: tenants.inbox(to, title))[0]
        return raw if signing_domains(raw) else None

    return wait_for(attempt, timeout=20, interval=0.2)


def refused(exc: smtplib.SMTPResponseException) -> tuple[int, str]:
    return exc.smtp_code, exc.smtp_error.decode(errors="replace")


def verified(tenants: Tenants, raw: bytes) -> bool:
    return dkim.verify(raw, dnsfunc=tenants.dnsfunc)


def forget_rows(stack: Stack, *domains: str) -> None:
    """Drop the lookup rows of `domains` from the session's shared stack after a test.

    The test's database is rolled back, but the node keeps what the reconciler wrote; left
    there, hundreds of such rows would show as drift to every later full reconcile."""
    conn = sqlite3.connect(stack.cfg.lookup_db)
    try:
        with conn:
            for domain in domains:
                conn.execute("DELETE FROM domains WHERE name = ?", (domain,))
                for table in ("mailboxes", "app_passwords", "aliases", "sender_logins",
                              "role_routes"):
                    conn.execute(f"DELETE FROM {table} WHERE address LIKE ?",  # noqa: S608
                                 (f"%@{domain}",))
    finally:
        conn.close()
