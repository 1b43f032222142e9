"""postmaster@ and abuse@ of every hosted domain reach someone (issue 11, "No postmaster"),
against the real Postfix and Dovecot: sent by an outside server to the MX port, read over IMAP
at the mailbox the organisation chose (or the automatic one)."""

import dataclasses
import importlib
import re
import smtplib
import sqlite3
import uuid

import pytest
from django.db import connection
from django.db.migrations.loader import MigrationLoader

from identity.selectors import domain_records
from mailboxes import services
from mailhost.backend.stack import Stack
from nodes.reconcile import reconcile_incremental
from tenants.access import SYSTEM
from tenants.models import Membership
from tests.factories import MembershipFactory, OrganisationFactory
from tests.security.two_tenants import forget_rows
from tests.stack import fetch_inbox, make_message, smtp_send, unique_domain, wait_for

pytestmark = [pytest.mark.stack, pytest.mark.django_db]

PASSWORD = "role address password 1"
OUTSIDE = "reporter@receiver.example"  # another mail server's report, or a person


class Hosting:
    """An organisation on the stack: its domain, and mailboxes created the real way."""

    def __init__(self, node, stack):
        self.node, self.stack = node, stack
        self.organisation = OrganisationFactory()
        self.domain = services.domain_create(actor=SYSTEM, organisation=self.organisation,
                                             name=unique_domain("roles"))
        self.domains = [self.domain.name]

    def admin(self, email: str, role: str = "owner") -> Membership:
        return MembershipFactory(organisation=self.organisation, role=role, user__email=email,
                                 user__username=email)

    def mailbox(self, local: str, domain=None):
        mailbox, _ = services.mailbox_create(actor=SYSTEM, domain=domain or self.domain,
                                             local_part=local, password=PASSWORD)
        return mailbox

    def other_domain(self, prefix: str, organisation=None):
        domain = services.domain_create(actor=SYSTEM,
                                        organisation=organisation or OrganisationFactory(),
                                        name=unique_domain(prefix))
        self.domains.append(domain.name)
        return domain

    def apply(self) -> None:
        reconcile_incremental(self.node)

    def send(self, to: str) -> str:
        subject = f"report {uuid.uuid4().hex[:10]}"
        smtp_send(self.stack, "smtp", OUTSIDE, to, make_message(OUTSIDE, to, subject))
        return subject

    def received(self, address: str, subject: str) -> bool:
        return any(m["Subject"] == subject for m in fetch_inbox(self.stack, address, PASSWORD))

    def arrives(self, to: str, at: str) -> None:
        """A message to `to` is read at `at`'s INBOX."""
        subject = self.send(to)
        wait_for(lambda: self.received(at, subject))


@pytest.fixture
def hosting(stack_node, mail_stack):
    hosting = Hosting(stack_node, mail_stack)
    yield hosting
    forget_rows(mail_stack, *hosting.domains)


@pytest.fixture
def operator_mailbox(hosting, mail_stack, settings):
    """The install's operator mailbox (MAILHOST_OPERATOR_MAILBOX), in the stack's config for
    this test only."""
    desk = hosting.mailbox("desk", hosting.other_domain("ops"))
    settings.MAILHOST_OPERATOR_MAILBOX = desk.address
    Stack(dataclasses.replace(mail_stack.cfg, operator_mailbox=desk.address)).write_config()
    mail_stack.reload("postfix")
    yield desk.address
    mail_stack.write_config()
    mail_stack.reload("postfix")


def refused(hosting: Hosting, to: str) -> bool:
    try:
        hosting.send(to)
    except smtplib.SMTPRecipientsRefused as exc:
        return exc.recipients[to][0] == 550
    return False


def test_it_delivers_postmaster_and_abuse_to_the_first_admins_mailbox(hosting):
    boss = hosting.mailbox("boss")
    hosting.admin(boss.address)
    hosting.apply()

    for role in ("postmaster", "abuse"):
        hosting.arrives(f"{role}@{hosting.domain.name}", at=boss.address)


def test_it_makes_every_address_the_portal_publishes_deliverable(hosting, settings):
    """Every mailto: in the records the portal tells the organisation to publish (TLS-RPT's
    default, DMARC's report defaults), read at the mailbox the organisation chose."""
    settings.MAILHOST_DMARC_RUA = ["mailto:postmaster+dmarc@{domain}"]
    domain = hosting.other_domain("published", hosting.organisation)
    reports = hosting.mailbox("reports", domain)
    hosting.admin(f"someone@{unique_domain('elsewhere')}")
    services.domain_update(actor=SYSTEM, domain=domain, role_target=reports.address)
    hosting.apply()

    published = {
        address
        for record in domain_records(domain)
        for address in re.findall(r"mailto:([^,;!\s]+)", record.value)
    }
    assert {f"postmaster@{domain.name}", f"postmaster+dmarc@{domain.name}"} <= published
    for address in sorted(published):
        hosting.arrives(address, at=reports.address)


def test_it_lets_the_organisations_own_mailbox_or_alias_win(hosting):
    boss, postmaster = hosting.mailbox("boss"), hosting.mailbox("postmaster")
    desk = hosting.mailbox("desk")
    hosting.admin(boss.address)
    services.alias_create(actor=SYSTEM, domain=hosting.domain, local_part="abuse",
                          destinations=[desk.address])
    hosting.apply()

    hosting.arrives(postmaster.address, at=postmaster.address)
    hosting.arrives(f"abuse@{hosting.domain.name}", at=desk.address)
    assert fetch_inbox(hosting.stack, boss.address, PASSWORD) == []


def test_it_follows_the_first_admin_when_the_organisations_people_change(hosting):
    first, second = hosting.mailbox("first"), hosting.mailbox("second")
    founder = hosting.admin(first.address)
    hosting.admin(second.address, role="admin")
    hosting.apply()
    hosting.arrives(f"postmaster@{hosting.domain.name}", at=first.address)

    founder.delete()  # the first admin leaves the organisation
    hosting.apply()

    hosting.arrives(f"postmaster@{hosting.domain.name}", at=second.address)


def test_it_falls_back_to_the_operator_mailbox(hosting, operator_mailbox):
    hosting.admin(f"boss@{unique_domain('gmail')}")  # the admin's mailbox is not hosted here
    chosen = hosting.mailbox("chosen")
    other = hosting.other_domain("plain", hosting.organisation)
    services.domain_update(actor=SYSTEM, domain=other, role_target=chosen.address)
    hosting.apply()
    hosting.arrives(f"abuse@{hosting.domain.name}", at=operator_mailbox)
    hosting.arrives(f"abuse@{other.name}", at=chosen.address)

    services.mailbox_delete(actor=SYSTEM, mailbox=chosen)  # the chosen mailbox goes away
    hosting.apply()

    hosting.arrives(f"abuse@{other.name}", at=operator_mailbox)


def test_it_refuses_role_mail_only_when_there_is_nowhere_to_send_it(hosting):
    hosting.admin(f"boss@{unique_domain('gmail')}")
    hosting.apply()
    assert refused(hosting, f"postmaster@{hosting.domain.name}")


def test_it_routes_the_role_addresses_of_existing_domains_after_the_upgrade(hosting):
    """Migration mailboxes.0006 records a `roles` change per existing domain, so the next
    incremental reconcile writes their routes (a full one would call them drift)."""
    migration = importlib.import_module("mailboxes.migrations.0006_role_addresses")
    boss = hosting.mailbox("boss")
    hosting.admin(boss.address)
    hosting.apply()
    conn = sqlite3.connect(hosting.stack.cfg.lookup_db)  # a node from before the upgrade
    with conn:
        conn.execute("DELETE FROM role_routes WHERE address LIKE ?", (f"%@{hosting.domain.name}",))
    conn.close()
    assert refused(hosting, f"abuse@{hosting.domain.name}")

    # The models as that migration saw them (MailNode was in mailboxes/ then; same tables).
    historical = MigrationLoader(connection).project_state(("mailboxes", "0006_role_addresses"))
    migration.route_existing_domains(historical.apps, None)
    hosting.apply()

    hosting.arrives(f"abuse@{hosting.domain.name}", at=boss.address)
