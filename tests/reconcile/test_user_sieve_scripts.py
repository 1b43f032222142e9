"""Users' own Sieve filters survive everything the portal does (issue 11, "mail that keeps its
users' settings"), against the real Postfix, Dovecot/Pigeonhole and a real ManageSieve session.

The user uploads and activates a filter over ManageSieve, as their mail client would. Then the
portal rotates the password, edits the domain, turns the auto-reply on and off and forwarding
on, deletes and restores the mailbox, and runs full reconciles: after each, the next message is
read over IMAP in the folder the user's filter files it into, the auto-reply answers only while
it is on, and a forward arrives alongside the filing.
"""

import contextlib
import imaplib
import json
import os
import ssl
import subprocess
import uuid
from pathlib import Path

import pytest

from mailboxes import services
from mailboxes.models import Mailbox
from mailhost.backend.apply import MANIFEST
from mailhost.backend.config import MAIL_GID, MAIL_UID
from mailhost.backend.sieve import HEADER
from nodes.reconcile import SIEVE_LAYOUT_MARKER, reconcile_full, reconcile_incremental
from tenants.access import SYSTEM
from tests.factories import OrganisationFactory
from tests.pages.conftest import clean_rate_limits  # noqa: F401
from tests.security.managesieve import upload_active_script
from tests.security.two_tenants import forget_rows
from tests.stack import imap_login, make_message, smtp_send, unique_domain, wait_for

pytestmark = [
    pytest.mark.stack, pytest.mark.django_db, pytest.mark.usefixtures("clean_rate_limits")
]

PASSWORD = "user sieve password 1"
NEW_PASSWORD = "user sieve password 2"
# The user's own filter: anything tagged [work] goes to the Work folder.
AWAY = "Anna is away"
USER_FILTER = (
    'require ["fileinto", "mailbox"];\n'
    'if header :contains "subject" "[work]" { fileinto :create "Work"; }\n'
)


class Mail:
    """Anna (who keeps her own filter), and people elsewhere on the stack who write to her."""

    def __init__(self, node, stack):
        self.node, self.stack = node, stack
        org = OrganisationFactory()
        self.domain = services.domain_create(actor=SYSTEM, organisation=org,
                                             name=unique_domain("sieve"))
        outside = services.domain_create(actor=SYSTEM, organisation=OrganisationFactory(),
                                         name=unique_domain("pals"))
        self.anna, _ = services.mailbox_create(actor=SYSTEM, domain=self.domain,
                                               local_part="anna", password=PASSWORD)
        self.passwords = {self.anna.address: PASSWORD}
        for local in ("carl", "dora", "eve", "fred"):
            mailbox, _ = services.mailbox_create(actor=SYSTEM, domain=outside, local_part=local,
                                                 password=PASSWORD)
            self.passwords[mailbox.address] = PASSWORD
            setattr(self, local, mailbox.address)
        self.domains = (self.domain.name, outside.name)
        self.apply()
        wait_for(lambda: imap_login(stack, self.anna.address, PASSWORD))

    def apply(self) -> None:
        reconcile_incremental(self.node)

    @property
    def home(self) -> Path:
        return self.stack.cfg.home_dir(str(self.anna.home_id))

    def folder(self, address: str, name: str) -> list[str]:
        """The subjects in one of `address`'s folders, read over IMAP."""
        return folder_subjects(self.stack, address, self.passwords[address], name)

    def write_to_anna(self, sender: str, tag: str = "[work]") -> str:
        """A message from `sender` to Anna; returns once every delivery it caused (filing, an
        auto-reply, a forward) is done, and gives its subject."""
        subject = f"{tag} {uuid.uuid4().hex[:10]}"
        smtp_send(self.stack, "smtp", sender, self.anna.address,
                  make_message(sender, self.anna.address, subject))
        wait_for(lambda: not queued_for(self.stack, self.domains))
        return subject

    def filed(self, subject: str) -> bool:
        """Anna's filter filed the message into Work, and not into her INBOX."""
        return subject in self.folder(self.anna.address, "Work") and subject not in self.folder(
            self.anna.address, "INBOX"
        )

    def answered(self, sender: str) -> bool:
        """`sender` got the portal's auto-reply (its subject is set to AWAY)."""
        return AWAY in self.folder(sender, "INBOX")


def folder_subjects(stack, user: str, password: str, folder: str) -> list[str]:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the stack's self-signed certificate, on loopback
    client = imaplib.IMAP4(*stack.address("imap"), timeout=10)
    client.starttls(context)
    try:
        client.login(user, password)
        status, _ = client.select(f'"{folder}"', readonly=True)
        if status != "OK":
            return []
        _, data = client.search(None, "ALL")
        subjects = []
        for num in data[0].split():
            _, parts = client.fetch(num, "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
            subjects.append(parts[0][1].decode().partition(":")[2].strip())
        return subjects
    finally:
        with contextlib.suppress(imaplib.IMAP4.error, OSError):
            client.logout()


def queued_for(stack, domains: tuple[str, ...]) -> bool:
    """Whether Postfix still holds mail for any of `domains` (a reply or forward included)."""
    output = subprocess.run(
        ["postqueue", "-c", str(stack.postfix_dir), "-j"], capture_output=True, text=True,
        check=True,
    ).stdout
    suffixes = tuple(f"@{domain}" for domain in domains)
    return any(
        recipient["address"].endswith(suffixes)
        for entry in map(json.loads, filter(str.strip, output.splitlines()))
        for recipient in entry["recipients"]
    )


@pytest.fixture
def mail(stack_node, mail_stack):
    mail = Mail(stack_node, mail_stack)
    yield mail
    forget_rows(mail_stack, *mail.domains)


def holder_client(client, address: str, password: str):
    """Anna signed in to /mailbox/, where holders turn the auto-reply and forwarding on."""
    response = client.post("/mailbox/login/", {"address": address, "password": password})
    assert response.status_code == 302, response.content
    return client


def activate_own_filter(mail: Mail, password: str = PASSWORD) -> None:
    upload_active_script(mail.stack.address("managesieve"), mail.anna.address, password,
                         USER_FILTER, name="my-rules")


def test_it_keeps_the_users_filter_through_every_portal_change(mail, client):
    activate_own_filter(mail)
    assert mail.filed(mail.write_to_anna(mail.carl))

    # The operator rotates Anna's password.
    services.mailbox_set_password(actor=SYSTEM, mailbox=mail.anna, password=NEW_PASSWORD)
    mail.passwords[mail.anna.address] = NEW_PASSWORD
    mail.apply()
    wait_for(lambda: imap_login(mail.stack, mail.anna.address, NEW_PASSWORD))
    assert mail.filed(mail.write_to_anna(mail.carl)), "the password change switched it off"

    # Staff edit the domain (its mailbox limit).
    services.domain_update(actor=SYSTEM, domain=mail.domain, max_mailboxes=50)
    mail.apply()
    assert mail.filed(mail.write_to_anna(mail.carl)), "the domain edit switched it off"

    # Anna turns the portal's auto-reply on: it answers, and her filter still files.
    holder = holder_client(client, mail.anna.address, NEW_PASSWORD)
    response = holder.post("/mailbox/vacation/", {
        "enabled": "on", "subject": AWAY, "body": "Back on Monday.",
    })
    assert response.status_code == 302
    mail.apply()
    subject = mail.write_to_anna(mail.dora)
    assert mail.filed(subject), "the auto-reply replaced her filter"
    assert mail.answered(mail.dora), "the auto-reply is on but did not answer"

    # ... and off again: no answer (to someone it never answered), the filter still files.
    response = holder.post("/mailbox/vacation/", {"subject": AWAY, "body": "Back."})
    assert response.status_code == 302
    mail.apply()
    subject = mail.write_to_anna(mail.eve)
    assert mail.filed(subject)
    assert not mail.answered(mail.eve), "the auto-reply is off but answered"

    # Forwarding with a copy runs alongside her filter.
    response = holder.post("/mailbox/forwarding/", {"forward_to": mail.fred, "keep_copy": "on"})
    assert response.status_code == 302
    mail.apply()
    subject = mail.write_to_anna(mail.carl)
    assert mail.filed(subject)
    assert subject in mail.folder(mail.fred, "INBOX"), "the forward did not arrive"

    # A full reconcile finds nothing of hers to "repair", and everything keeps working.
    report = reconcile_full(mail.node)
    home = f"mail/{mail.anna.home_id}/"
    assert not [line for line in report.drift if home in line], report.drift
    assert (mail.home / ".dovecot.sieve").is_symlink()
    assert (mail.home / "sieve" / "my-rules.sieve").read_text() == USER_FILTER
    subject = mail.write_to_anna(mail.dora)
    assert mail.filed(subject), "the full reconcile switched it off"
    assert subject in mail.folder(mail.fred, "INBOX")


def test_it_keeps_the_auto_reply_on_when_the_user_activates_a_filter_later(mail):
    """Activating a script over ManageSieve no longer moves the portal's auto-reply aside
    while the portal still shows it on."""
    services.mailbox_set_vacation(actor=SYSTEM, mailbox=mail.anna, enabled=True,
                                  subject=AWAY, body="Back soon.", start=None, end=None)
    mail.apply()
    activate_own_filter(mail)

    subject = mail.write_to_anna(mail.carl)
    assert mail.filed(subject) and mail.answered(mail.carl)
    reconcile_full(mail.node)
    subject = mail.write_to_anna(mail.dora)
    assert mail.filed(subject) and mail.answered(mail.dora)


def test_it_forwards_without_a_copy_before_the_users_filter_runs(mail, client):
    """'Forward, keep no copy' means what it says even with a filter of the user's own."""
    activate_own_filter(mail)
    services.mailbox_set_forwarding(actor=SYSTEM, mailbox=mail.anna, forward_to=[mail.fred],
                                    keep_copy=False)
    mail.apply()
    subject = mail.write_to_anna(mail.carl)
    assert subject in mail.folder(mail.fred, "INBOX")
    assert subject not in mail.folder(mail.anna.address, "Work") + mail.folder(
        mail.anna.address, "INBOX"
    )


def test_it_repairs_the_portals_scripts_and_leaves_the_users_alone(mail):
    activate_own_filter(mail)
    services.mailbox_set_vacation(actor=SYSTEM, mailbox=mail.anna, enabled=True,
                                  subject=AWAY, body="Back soon.", start=None, end=None)
    mail.apply()
    before = mail.home / ".mailhost" / "before.sieve"
    assert before.read_text().startswith(HEADER) and "vacation" in before.read_text()
    assert (before.parent.stat().st_uid, before.parent.stat().st_gid) == (MAIL_UID, MAIL_GID)
    # Anna edits her own script in her store; someone edits the portal's by hand.
    (mail.home / "sieve" / "my-rules.sieve").write_text(USER_FILTER + "# mine\n")
    before.write_text("# edited by hand\nkeep;\n")

    report = reconcile_full(mail.node)

    relative = f"mail/{mail.anna.home_id}"
    assert f"file {relative}/.mailhost/before.sieve was changed by hand" in report.drift
    assert not [line for line in report.drift if "my-rules" in line or "dovecot.sieve" in line]
    assert "vacation" in before.read_text()
    assert (mail.home / "sieve" / "my-rules.sieve").read_text() == USER_FILTER + "# mine\n"
    assert mail.filed(mail.write_to_anna(mail.carl)) and mail.answered(mail.carl)

    # The feature turned off: the portal's script goes, the user's stays active.
    services.mailbox_set_vacation(actor=SYSTEM, mailbox=mail.anna, enabled=False,
                                  subject=AWAY, body="", start=None, end=None)
    mail.apply()
    assert not before.exists() and not before.with_suffix(".svbin").exists()
    assert (mail.home / ".dovecot.sieve").resolve().name == "my-rules.sieve"
    assert mail.filed(mail.write_to_anna(mail.dora)) and not mail.answered(mail.dora)


def test_it_keeps_both_scripts_through_delete_and_restore(mail):
    activate_own_filter(mail)
    services.mailbox_set_forwarding(actor=SYSTEM, mailbox=mail.anna, forward_to=[mail.fred],
                                    keep_copy=True)
    mail.apply()

    services.mailbox_delete(actor=SYSTEM, mailbox=mail.anna)
    mail.apply()
    archived = mail.stack.cfg.path(f"archive/{mail.anna.home_id}")
    assert (archived / "sieve" / "my-rules.sieve").exists() and not mail.home.exists()

    services.mailbox_restore(actor=SYSTEM, mailbox=Mailbox.objects.get(pk=mail.anna.pk))
    mail.apply()
    assert not archived.exists(), "the restore left the mail home in archive/"
    assert (mail.home / ".mailhost" / "before.sieve").exists()
    subject = mail.write_to_anna(mail.carl)
    assert mail.filed(subject), "the restored mailbox lost the user's filter"
    assert subject in mail.folder(mail.fred, "INBOX"), "the restored mailbox lost forwarding"


def test_it_retires_the_old_portal_script_once_and_leaves_user_scripts(mail, mail_stack):
    """An install from before this design: the portal wrote its script as the user's active
    `.dovecot.sieve` and listed it in the manifest. Another user had since activated a script
    of their own over it (the manifest still listed the path)."""
    services.mailbox_set_vacation(actor=SYSTEM, mailbox=mail.anna, enabled=True,
                                  subject=AWAY, body="Back soon.", start=None, end=None)
    other, _ = services.mailbox_create(actor=SYSTEM, domain=mail.domain, local_part="otto",
                                       password=PASSWORD)
    mail.apply()
    old_portal_script = mail.home / ".dovecot.sieve"
    old_portal_script.write_text(HEADER + 'require ["vacation"];\nvacation "old";\n')
    os.chown(old_portal_script, MAIL_UID, MAIL_GID)
    otto_home = mail_stack.cfg.home_dir(str(other.home_id))
    upload_active_script(mail_stack.address("managesieve"), other.address, PASSWORD,
                         USER_FILTER, name="otto")
    manifest_path = mail_stack.cfg.path(MANIFEST)
    manifest = json.loads(manifest_path.read_text())
    for home in (mail.anna.home_id, other.home_id):
        manifest[f"mail/{home}/.dovecot.sieve"] = "0" * 64
    manifest_path.write_text(json.dumps(manifest))
    mail_stack.cfg.path(SIEVE_LAYOUT_MARKER).unlink(missing_ok=True)

    report = reconcile_full(mail.node)

    assert not old_portal_script.exists() and not os.path.lexists(old_portal_script)
    assert (otto_home / ".dovecot.sieve").is_symlink(), "a user's activation was removed"
    assert (otto_home / "sieve" / "otto.sieve").read_text() == USER_FILTER
    assert not [line for line in report.drift if "dovecot.sieve" in line], report.drift
    manifest = json.loads(manifest_path.read_text())
    assert not [path for path in manifest if path.endswith(".dovecot.sieve")]
    assert mail_stack.cfg.path(SIEVE_LAYOUT_MARKER).exists()
    # The portal's auto-reply now runs from its before script, and Anna's filter can be hers.
    assert "vacation" in (mail.home / ".mailhost" / "before.sieve").read_text()
    activate_own_filter(mail)
    subject = mail.write_to_anna(mail.carl)
    assert mail.filed(subject) and mail.answered(mail.carl)
