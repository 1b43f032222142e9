"""Webmail in a real browser (Playwright driving Debian's Chromium) as production serves it:
the portal (gunicorn) and Roundcube (php-fpm) behind the stack's edge, on one HTTPS origin.
A mailbox holder signs in at /mailbox/, opens webmail by single sign-on, reads a message that
came in over SMTP, replies (the receiver checks the DKIM signature), and makes a filter that
files the next message; and the refusals as an attacker sees them. Screenshots of each step
land in var/screenshots/ (webmail-*.png)."""

import email
import email.policy
import imaplib
import os
import re
from collections.abc import Iterator
from urllib.parse import urlencode, urljoin, urlsplit

import dkim
import pytest
import requests
from playwright.sync_api import Browser, Page, expect

from mailboxes import services as mailbox_services
from mailboxes.models import Mailbox
from nodes.reconcile import reconcile_full, reconcile_incremental
from tenants.access import SYSTEM
from tests.delivery.support import internet_address, published_txt
from tests.inbound.conftest import PASSWORD, host_domain
from tests.portal import running_portal
from tests.stack import HOSTNAME, imap_login, make_message, smtp_send, stack_web_port, wait_for
from tests.webmail.support import sso_query

pytestmark = [pytest.mark.browser, pytest.mark.stack, pytest.mark.usefixtures("clean_rate_limits")]
DESKTOP = {"width": 1280, "height": 900}


def shot(page: Page, directory: str, name: str) -> None:
    page.screenshot(path=os.path.join(directory, f"webmail-{name}.png"), full_page=True)


@pytest.fixture
def site(stack_node, mail_stack, transactional_db) -> Iterator[str]:
    """The portal in production mode behind the stack's edge; its base URL (the node's name,
    which the browser resolves to 127.0.0.1)."""
    with running_portal(
        port=stack_web_port(mail_stack), MAILHOST_HTTPS="true", MAILHOST_HOSTNAME=HOSTNAME,
        MAILHOST_TRUSTED_PROXIES="127.0.0.1",
    ):
        yield f"https://{HOSTNAME}:{mail_stack.cfg.ports['https']}"


@pytest.fixture
def chromium(browser_type, browser_type_launch_args) -> Iterator[Browser]:
    args = [*browser_type_launch_args.get("args", []),
            f"--host-resolver-rules=MAP {HOSTNAME} 127.0.0.1"]
    browser = browser_type.launch(**{**browser_type_launch_args, "args": args})
    try:
        yield browser
    finally:
        browser.close()


def new_page(browser: Browser) -> Page:
    # The stack's edge has the node's self-signed certificate.
    return browser.new_context(ignore_https_errors=True, viewport=DESKTOP).new_page()


def holder_sign_in(page: Page, base: str, address: str, password: str) -> None:
    page.goto(base + "/mailbox/login/")
    page.get_by_label("E-mail address").fill(address)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", level=1)).to_be_visible()


def sso_link_unredeemed(page: Page, site: str, stack) -> str:
    """What clicking "Open webmail" in that browser's /mailbox/ session yields, fetched with
    its cookies but not followed: the link with a fresh, unspent token (what an attacker
    would need to get hold of)."""
    cookies = {c["name"]: c["value"] for c in page.context.cookies()}
    answer = requests.post(
        f"https://127.0.0.1:{stack.cfg.ports['https']}/mailbox/webmail/",
        data={"csrfmiddlewaretoken": cookies["csrftoken"]}, cookies=cookies,
        headers={"Host": urlsplit(site).netloc, "Referer": site + "/mailbox/"},
        allow_redirects=False, verify=False, timeout=30,
    )
    assert answer.status_code == 302, answer.status_code
    return urljoin(site, answer.headers["Location"])


def in_folder(mail_stack, address: str, folder: str) -> list[str]:
    client = imaplib.IMAP4("127.0.0.1", mail_stack.cfg.ports["imap"], timeout=10)
    try:
        client.login(address, PASSWORD)
        client.select(folder, readonly=True)
        _, data = client.search(None, "ALL")
        subjects = []
        for num in data[0].split():
            _, parts = client.fetch(num, "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
            subjects.append(email.message_from_bytes(parts[0][1])["Subject"])
        return subjects
    finally:
        client.logout()


def test_a_holder_reads_replies_and_files_mail_in_webmail_opened_from_the_portal(
    chromium, site, stack_node, mail_stack, internet, screenshots_dir
):
    webmail = site + "/webmail/"
    hosted = host_domain(stack_node, mail_stack, prefix="wm", mailboxes=("anna",))
    anna, carol = hosted.address("anna"), internet_address("carol")
    imap = imaplib.IMAP4("127.0.0.1", mail_stack.cfg.ports["imap"], timeout=10)
    imap.login(anna, PASSWORD)
    imap.create("Receipts")  # the holder's own folder, as any mail app makes one
    imap.subscribe("Receipts")
    imap.logout()
    smtp_send(mail_stack, "smtp", carol, anna,
              make_message(carol, anna, "Lunch on Thursday?", "Shall we?\n"))
    wait_for(lambda: "Lunch on Thursday?" in in_folder(mail_stack, anna, "INBOX"), timeout=30)

    page = new_page(chromium)
    holder_sign_in(page, site, anna, PASSWORD)
    shot(page, screenshots_dir, "1-portal")
    page.get_by_role("button", name="Open webmail").click()
    expect(page).to_have_url(re.compile(r"/webmail/\?_task=mail"))
    expect(page.get_by_text("Lunch on Thursday?").first).to_be_visible()
    expect(page).to_have_title(re.compile(re.escape(hosted.domain.organisation.name)))
    shot(page, screenshots_dir, "2-inbox")

    # Read it and reply.
    page.get_by_text("Lunch on Thursday?").first.dblclick()
    expect(page.get_by_text("Shall we?")).to_be_visible()
    shot(page, screenshots_dir, "3-message")
    page.locator("a.reply:not(.all) >> visible=true").first.click()
    body = page.locator("#composebody")
    expect(body).to_be_visible()
    body.press("Control+Home")
    body.type("Thursday works for me.\n")
    shot(page, screenshots_dir, "4-reply")
    page.locator("button.send").click()
    expect(page.get_by_text("Message sent successfully").first).to_be_visible()
    (received,) = wait_for(lambda: internet.received_by(carol), timeout=30)
    reply = email.message_from_bytes(received.data, policy=email.policy.default)
    assert reply["Subject"] == "Re: Lunch on Thursday?"
    assert "Thursday works for me." in reply.get_body(("plain",)).get_content()
    signature = re.sub(r"\s+", "", str(reply["DKIM-Signature"]))
    assert f"d={hosted.name};" in signature
    assert dkim.verify(received.data, dnsfunc=published_txt(mail_stack))

    # A filter of their own, through ManageSieve: receipts go to Receipts.
    expect(page).not_to_have_url(re.compile(r"_action=compose"))  # back in the list
    page.goto(webmail + "?_task=settings&_action=plugin.managesieve")
    page.get_by_role("button", name="Create").first.click()
    form = page.frame_locator("iframe[name='filter-box']")
    form.locator("#_name").fill("Receipts")
    form.locator("[name='_rule_target[0][]']").fill("Receipt")
    form.locator("[name='_action_mailbox[0]']").select_option(label="Receipts")
    shot(page, screenshots_dir, "5-filter")
    form.get_by_role("button", name="Save").click()
    expect(page.get_by_text("Filter saved successfully").first).to_be_visible()

    # The user's own script survives a full reconcile, and files the next receipt.
    reconcile_full(stack_node)
    smtp_send(mail_stack, "smtp", carol, anna,
              make_message(carol, anna, "Receipt for order 42", "Thank you.\n"))
    wait_for(lambda: "Receipt for order 42" in in_folder(mail_stack, anna, "Receipts"),
             timeout=30)
    assert "Receipt for order 42" not in in_folder(mail_stack, anna, "INBOX")
    page.goto(webmail + "?_task=mail&_mbox=Receipts")
    expect(page.get_by_text("Receipt for order 42").first).to_be_visible()
    shot(page, screenshots_dir, "6-filed")


def test_webmail_refuses_a_replayed_token_another_mailbox_and_a_suspended_one(
    chromium, site, stack_node, mail_stack, screenshots_dir
):
    webmail = site + "/webmail/"
    hosted = host_domain(stack_node, mail_stack, prefix="wmx", mailboxes=("anna", "bob"))
    anna, bob = hosted.address("anna"), hosted.address("bob")

    # Replayed: the holder's own link, used once by the holder, then again elsewhere.
    holder = new_page(chromium)
    holder_sign_in(holder, site, anna, PASSWORD)
    used = []
    holder.on("request", lambda r: used.append(r.url) if "_mailhost_sso=" in r.url else None)
    holder.get_by_role("button", name="Open webmail").click()
    expect(holder).to_have_url(re.compile(r"/webmail/\?_task=mail"))
    attacker = new_page(chromium)
    answer = attacker.goto(used[0])
    assert answer.status == 401
    expect(attacker.locator("input[name='_pass']")).to_be_visible()  # the login form, no mail
    shot(attacker, screenshots_dir, "7-replay-refused")

    # Another mailbox: anna's fresh, unspent token presented for bob.
    fresh = sso_query(sso_link_unredeemed(holder, site, mail_stack))
    forged = webmail + "?" + urlencode({**fresh, "_user": bob})
    answer = attacker.goto(forged)
    assert answer.status == 401
    expect(attacker.locator("input[name='_pass']")).to_be_visible()
    shot(attacker, screenshots_dir, "8-other-mailbox-refused")

    # Suspended: bob's unspent token, then the operator suspends bob.
    bob_page = new_page(chromium)
    holder_sign_in(bob_page, site, bob, PASSWORD)
    link = sso_link_unredeemed(bob_page, site, mail_stack)
    bob_box = Mailbox.objects.get(domain=hosted.domain, local_part="bob")
    mailbox_services.mailbox_set_status(actor=SYSTEM, mailbox=bob_box, status="suspended")
    reconcile_incremental(stack_node)
    wait_for(lambda: not imap_login(mail_stack, bob, PASSWORD), timeout=30)
    answer = bob_page.goto(link)
    assert answer.status == 401
    expect(bob_page.locator("input[name='_pass']")).to_be_visible()
    shot(bob_page, screenshots_dir, "9-suspended-refused")
