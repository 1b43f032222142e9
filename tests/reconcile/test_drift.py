import sqlite3

import pytest

from mailboxes import services
from mailboxes.models import Mailbox
from mailhost.backend.render import UnsafeValue
from mailhost.passwords import generate_password
from nodes.models import MailNode
from nodes.reconcile import reconcile_full, reconcile_incremental
from tenants.access import SYSTEM
from tests.factories import OrganisationFactory
from tests.stack import imap_login, unique_domain, wait_for

pytestmark = [pytest.mark.stack, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def live_mailbox(reconcile_worker, mail_stack):
    domain = services.domain_create(
        actor=SYSTEM, organisation=OrganisationFactory(), name=unique_domain("drift")
    )
    password = generate_password()
    mailbox, _ = services.mailbox_create(
        actor=SYSTEM, domain=domain, local_part="erin", password=password
    )
    wait_for(lambda: imap_login(mail_stack, mailbox.address, password), timeout=2)
    # Every change applied, so no reconcile still in flight rewrites the rows a test edits.
    node = MailNode.objects.get()
    wait_for(lambda: node.refresh_from_db() or node.applied_revision >= node.desired_revision)
    # The stack is shared by the session: rows of earlier tests, whose database rows were
    # flushed, are still on the node. Repair them first so a test sees only its own drift.
    reconcile_full(node)
    return mailbox, password


def test_it_reports_and_repairs_hand_edits_to_files_and_rows(live_mailbox, mail_stack):
    mailbox, password = live_mailbox
    node = MailNode.objects.get()
    main_cf = mail_stack.cfg.path("postfix/main.cf")
    original = main_cf.read_bytes()
    main_cf.write_bytes(original + b"\n# edited by hand\n")
    conn = sqlite3.connect(mail_stack.cfg.lookup_db)
    with conn:
        conn.execute("UPDATE mailboxes SET can_login = 0 WHERE address = ?", (mailbox.address,))
        conn.execute("INSERT INTO aliases VALUES ('hand', 'rogue@x.test', 'evil@outside.example')")
    conn.close()
    assert not imap_login(mail_stack, mailbox.address, password)

    report = reconcile_full(node)

    assert "file postfix/main.cf was changed by hand" in report.drift
    assert any("rogue@x.test" in line for line in report.drift)
    assert any(mailbox.address in line for line in report.drift)
    assert main_cf.read_bytes() == original
    assert imap_login(mail_stack, mailbox.address, password)
    node.refresh_from_db()
    assert node.last_drift == report.drift and node.last_drift_at is not None
    assert reconcile_full(node).drift == []  # repaired: a second pass finds nothing


def test_it_shows_the_diff_without_applying_it_on_a_dry_run(live_mailbox, mail_stack):
    mailbox, _ = live_mailbox
    Mailbox.objects.filter(pk=mailbox.pk).update(quota_mb=7)  # a change no service recorded
    node = MailNode.objects.get()
    report = reconcile_full(node, dry_run=True)
    assert any(mailbox.address in line and "7340032" in line for line in report.describe())
    conn = sqlite3.connect(mail_stack.cfg.lookup_db)
    quota = conn.execute(
        "SELECT quota_bytes FROM mailboxes WHERE address=?", (mailbox.address,)
    ).fetchone()[0]
    conn.close()
    assert quota != 7 * 1024 * 1024


def test_it_refuses_a_hostile_name_that_bypassed_the_services(live_mailbox, mail_stack):
    mailbox, password = live_mailbox
    before = mail_stack.cfg.lookup_db.read_bytes()
    Mailbox.objects.filter(pk=mailbox.pk).update(local_part="evil\nline")
    from nodes.changes import record_change

    with pytest.raises(UnsafeValue):
        from django.db import transaction

        with transaction.atomic():
            record_change(node_id=mailbox.domain.node_id, kind="mailbox", object_id=mailbox.pk)
        reconcile_incremental(MailNode.objects.get())
    node = MailNode.objects.get()
    assert "UnsafeValue" in node.last_error
    assert node.applied_revision < node.desired_revision
    assert imap_login(mail_stack, mailbox.address, password)  # the old state still serves
    assert b"evil\nline" not in mail_stack.cfg.lookup_db.read_bytes() + before
