"""The pages in a real browser (Playwright driving Debian's Chromium) against the live server,
and, where it matters, the real mail stack: what a person does, end to end.

Screenshots of each main page land in var/screenshots/ (desktop, and phone where noted).
"""

import datetime as dt
import os
import re

import pytest
from playwright.sync_api import Page, expect

from mailboxes import services as mailbox_services
from nodes.reconcile import reconcile_incremental
from tenants.access import SYSTEM, Actor
from tenants.services import membership_set, organisation_create, user_create_staff
from tests.factories import UserFactory
from tests.stack import fetch_inbox, imap_login, make_message, smtp_send, unique_domain, wait_for

pytestmark = pytest.mark.browser
OPERATOR = ("operator@consultancy.test", "operator-password-1")
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}


def shot(page: Page, directory: str, name: str) -> None:
    page.screenshot(path=os.path.join(directory, f"{name}.png"), full_page=True)


def operator_sign_in(page: Page, base: str, email: str, password: str) -> None:
    page.goto(base + "/accounts/login/")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("h1")).not_to_have_text("Operator sign-in")


def holder_sign_in(page: Page, base: str, address: str, password: str) -> None:
    page.goto(base + "/mailbox/login/")
    page.get_by_label("E-mail address").fill(address)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", level=1)).to_be_visible()


@pytest.fixture
def operator(transactional_db):
    user = user_create_staff(email=OPERATOR[0], password=OPERATOR[1])
    organisation = organisation_create(actor=SYSTEM, slug="acme", name="Acme Ltd")
    return user, organisation


@pytest.mark.stack
def test_it_takes_an_operator_and_a_mailbox_holder_through_the_pages(
    page: Page, live_server, operator, stack_node, mail_stack, screenshots_dir
):
    base = live_server.url
    page.set_viewport_size(DESKTOP)
    page.goto(base + "/accounts/login/")
    shot(page, screenshots_dir, "operator-login")
    operator_sign_in(page, base, *OPERATOR)
    expect(page).to_have_url(re.compile(r"/mail-admin/acme/$"))
    shot(page, screenshots_dir, "dashboard")

    # Add a domain and see the records to publish.
    name = unique_domain("web")
    page.get_by_role("link", name="Add domain").first.click()
    page.get_by_label("Domain name").fill(name)
    page.get_by_role("button", name="Add domain").click()
    expect(page.get_by_role("heading", name="What to do next")).to_be_visible()
    expect(page.locator("table.records")).to_contain_text(f"_dmarc.{name}.")
    expect(page.locator("table.records")).to_contain_text(f"._domainkey.{name}.")
    shot(page, screenshots_dir, "domain-dns")

    # Create a mailbox; its generated password is shown once.
    page.goto(f"{base}/mail-admin/acme/mailboxes/new/?domain={name}")
    page.get_by_label("Address").fill("anna")
    page.get_by_label("Name").fill("Anna Berg")
    page.get_by_role("button", name="Create mailbox").click()
    generated = page.locator("#generated-password").inner_text().strip()
    assert len(generated) >= 16
    shot(page, screenshots_dir, "mailbox-created")
    address = f"anna@{name}"
    page.goto(f"{base}/mail-admin/acme/domains/{name}/")
    expect(page.get_by_role("link", name=address)).to_be_visible()
    shot(page, screenshots_dir, "domain")
    page.goto(f"{base}/mail-admin/acme/mailboxes/")
    shot(page, screenshots_dir, "mailboxes")
    page.set_viewport_size(PHONE)
    shot(page, screenshots_dir, "mailboxes-phone")
    page.set_viewport_size(DESKTOP)

    reconcile_incremental(stack_node)
    wait_for(lambda: imap_login(mail_stack, address, generated), timeout=5)

    # The mailbox holder signs in to /mailbox/ with it: a separate browser context (no operator).
    holder = page.context.browser.new_page(viewport=PHONE)
    holder_sign_in(holder, base, address, generated)
    expect(holder.get_by_text(address).first).to_be_visible()
    shot(holder, screenshots_dir, "portal-home-phone")
    holder.get_by_role("link", name="Set up mail apps").click()
    expect(holder.get_by_role("cell", name=str(mail_stack.cfg.ports["imaps"]))).to_be_visible()
    shot(holder, screenshots_dir, "portal-setup-phone")
    holder.set_viewport_size(DESKTOP)
    shot(holder, screenshots_dir, "portal-setup")

    # Change the password: the new one works over IMAP within 2 s, the old one no longer.
    holder.get_by_role("link", name="Password", exact=True).click()
    holder.get_by_label("Current password").fill(generated)
    holder.get_by_label("New password", exact=True).fill("my-own-new-password")
    holder.get_by_label("New password again").fill("my-own-new-password")
    shot(holder, screenshots_dir, "portal-password")
    holder.get_by_role("button", name="Change password").click()
    expect(holder.get_by_text("Your password was changed")).to_be_visible()
    reconcile_incremental(stack_node)
    wait_for(lambda: imap_login(mail_stack, address, "my-own-new-password"), timeout=2)
    assert not imap_login(mail_stack, address, generated)
    holder.close()


@pytest.mark.stack
def test_it_sends_the_vacation_reply_set_in_the_portal(
    page: Page, live_server, operator, stack_node, mail_stack, screenshots_dir
):
    user, organisation = operator
    actor = Actor(user=user)
    domain = mailbox_services.domain_create(
        actor=actor, organisation=organisation, name=unique_domain("vac")
    )
    away, _ = mailbox_services.mailbox_create(
        actor=actor, domain=domain, local_part="away", password="away-password-1"
    )
    sender, _ = mailbox_services.mailbox_create(
        actor=actor, domain=domain, local_part="sender", password="sender-password-1"
    )
    reconcile_incremental(stack_node)

    page.set_viewport_size(DESKTOP)
    holder_sign_in(page, live_server.url, away.address, "away-password-1")
    page.get_by_role("link", name="Auto-reply", exact=True).click()
    page.get_by_label("Send an automatic reply").check()
    page.get_by_label("Subject").fill("Out of the office")
    page.get_by_label("Message").fill("I am away this week.\n.\nBack on Monday.")
    page.get_by_label("First day").fill((dt.date.today() - dt.timedelta(days=1)).isoformat())
    page.get_by_label("Last day").fill((dt.date.today() + dt.timedelta(days=6)).isoformat())
    shot(page, screenshots_dir, "portal-vacation")
    page.get_by_role("button", name="Save auto-reply").click()
    expect(page.get_by_text("Auto-reply on.")).to_be_visible()
    away.refresh_from_db()
    assert away.vacation_enabled
    reconcile_incremental(stack_node)
    message = make_message(sender.address, away.address, "Meeting on Friday?")
    smtp_send(mail_stack, "submission", sender.address, away.address, message,
              login=(sender.address, "sender-password-1"))
    replies = wait_for(
        lambda: [m for m in fetch_inbox(mail_stack, sender.address, "sender-password-1")
                 if m["Subject"] == "Out of the office"],
        timeout=10,
    )
    body = replies[0].get_body(("plain",)).get_content()
    assert "I am away this week.\n.\nBack on Monday." in body.replace("\r\n", "\n")


def test_it_keeps_tenants_apart_and_viewers_read_only(
    page: Page, live_server, operator, screenshots_dir
):
    _, organisation = operator
    other = organisation_create(actor=SYSTEM, slug="globex", name="Globex")
    viewer = UserFactory(email="viewer@client.test", username="viewer@client.test")
    viewer.save()
    from allauth.account.models import EmailAddress

    EmailAddress.objects.create(user=viewer, email=viewer.email, verified=True, primary=True)
    membership_set(actor=SYSTEM, organisation=organisation, user=viewer, role="viewer")
    mailbox_services.domain_create(
        actor=SYSTEM, organisation=other, name=unique_domain("globex")
    )
    base = live_server.url

    page.set_viewport_size(DESKTOP)
    operator_sign_in(page, base, viewer.email, "correct horse battery")
    expect(page).to_have_url(re.compile(r"/mail-admin/acme/$"))
    expect(page.get_by_role("link", name="Add domain")).to_have_count(0)
    page.goto(base + "/mail-admin/acme/mailboxes/")
    expect(page.get_by_role("link", name="New mailbox")).to_have_count(0)

    response = page.goto(base + "/mail-admin/acme/mailboxes/new/")
    assert response.status == 403
    expect(page.get_by_text("Your role in this organisation is read-only.")).to_be_visible()
    shot(page, screenshots_dir, "viewer-403")

    response = page.goto(base + "/mail-admin/globex/")
    assert response.status == 404
    expect(page.get_by_role("heading", name="Not found")).to_be_visible()
    shot(page, screenshots_dir, "other-organisation-404")
