"""Mail set up over SMTP and IMAP, and read back over IMAP, for the backup tests."""

import contextlib
import email
import email.policy
import imaplib

from mailboxes import services
from mailhost.backend.stack import Stack
from nodes.models import MailNode
from tenants.access import SYSTEM
from tests.stack import _imap, make_message, smtp_send, wait_for

PASSWORD = "backup-password-1"


def hosted_mailboxes(node, organisation, domain_name: str, *local_parts: str):
    domain = services.domain_create(actor=SYSTEM, organisation=organisation, name=domain_name)
    boxes = [services.mailbox_create(actor=SYSTEM, domain=domain, local_part=lp,
                                     password=PASSWORD)[0] for lp in local_parts]
    wait_for(lambda: MailNode.objects.get(pk=node.pk).applied_revision >= boxes[-1].revision, 15)
    return domain, boxes


def deliver(stack: Stack, address: str, *subjects: str) -> None:
    for subject in subjects:
        smtp_send(stack, "smtp", "sender@outside.example", address,
                  make_message("sender@outside.example", address, subject,
                               f"Body of {subject}.\n" * 50))
    wait_for(lambda: set(subjects) <= {s for _, s, _ in mail_state(stack, address)}, 20)


@contextlib.contextmanager
def imap_session(stack: Stack, address: str):
    client = _imap(stack)
    client.login(address, PASSWORD)
    try:
        yield client
    finally:
        with contextlib.suppress(imaplib.IMAP4.error, OSError):
            client.logout()


def file_and_flag(stack: Stack, address: str, flagged: str, answered: str, filed: str) -> None:
    """What a mail client does: a folder tree, a message moved there, flags and a keyword
    (messages picked by subject: delivery order is not arrival order)."""
    with imap_session(stack, address) as client:
        client.create("Archive/2024")
        client.select("INBOX")

        def number(subject: str) -> bytes:
            _, found = client.search(None, "SUBJECT", f'"{subject}"')
            (num,) = found[0].split()
            return num

        client.store(number(flagged), "+FLAGS", "(\\Seen \\Flagged $Project)")
        client.store(number(answered), "+FLAGS", "(\\Answered \\Seen)")
        moved = number(filed)
        client.copy(moved, "Archive/2024")
        client.store(moved, "+FLAGS", "(\\Deleted)")
        client.expunge()
        client.create("Empty")


def mail_state(stack: Stack, address: str) -> list[tuple[str, str, frozenset]]:
    """(folder, subject, flags) of every message the holder sees over IMAP, sorted."""
    found = []
    with imap_session(stack, address) as client:
        _, listing = client.list()
        for line in listing:
            folder = line.decode().rsplit(' "/" ', 1)[1].strip('"')
            status, count = client.select(f'"{folder}"', readonly=True)
            if status != "OK" or count[0] == b"0":  # a \Noselect parent, an empty folder
                continue
            _, data = client.fetch("1:*", "(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
            for part in data:
                if not isinstance(part, tuple):
                    continue
                flags = imaplib.ParseFlags(part[0])
                subject = email.message_from_bytes(part[1], policy=email.policy.default)["Subject"]
                found.append((folder, str(subject),
                              frozenset(f.decode() for f in flags) - {"\\Recent"}))
    return sorted(found, key=lambda item: (item[0], item[1], sorted(item[2])))


def folders(stack: Stack, address: str) -> set[str]:
    with imap_session(stack, address) as client:
        _, listing = client.list()
    return {line.decode().rsplit(' "/" ', 1)[1].strip('"') for line in listing}
