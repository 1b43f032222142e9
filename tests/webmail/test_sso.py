"""Webmail single sign-on against the real stack: Roundcube on php-fpm behind the edge, Dovecot,
the node's token store. Written as the holder and as an attacker act; what they get back is
what Roundcube answers through the edge."""

import base64
import imaplib
import socket
import time

import pytest

from mailboxes import services as mailbox_services
from mailhost.backend.webmail import MASTER_LOGIN, WEBMAIL_MASTER_SECRET, WEBMAIL_SSO_DB, SsoStore
from nodes.reconcile import reconcile_incremental
from tenants.access import SYSTEM
from tests.stack import imap_login, wait_for
from tests.webmail.support import PASSWORD, Browser, holders, sso_query

pytestmark = [pytest.mark.stack, pytest.mark.django_db(transaction=True),
              pytest.mark.usefixtures("clean_rate_limits")]


@pytest.fixture
def webmail(stack_node, mail_stack, settings):
    settings.MAILHOST_WEBMAIL_URL = f"https://127.0.0.1:{mail_stack.cfg.ports['https']}/webmail/"
    return mail_stack


def sign_in(client, mailbox) -> None:
    response = client.post("/mailbox/login/", {"address": mailbox.address, "password": PASSWORD})
    assert response.status_code == 302


def open_webmail(client) -> str:
    """Click "Open webmail" in /mailbox/: the SSO link the portal redirects to."""
    response = client.post("/mailbox/webmail/")
    assert response.status_code == 302
    assert response["Referrer-Policy"] == "no-referrer"
    return response["Location"]


def test_it_signs_the_holder_in_once_and_refuses_the_same_token_again(
    client, webmail, stack_node
):
    (anna,) = holders(stack_node, webmail, "anna", org_name="Berg & Sons")
    sign_in(client, anna)
    link = open_webmail(client)
    assert sso_query(link)["_user"] == anna.address

    holder = Browser(webmail)
    landed = holder.redeem(link)
    assert landed.status == 200 and landed.signed_in, landed.title
    assert "Berg &amp; Sons" in holder.inbox().title  # the organisation's name, not Roundcube's

    # The same link again (a copy from the history, a proxy log, a shoulder): refused.
    replay = Browser(webmail)
    refused = replay.redeem(link)
    assert refused.status == 401
    assert not replay.inbox().signed_in
    assert holder.inbox().signed_in  # the holder's own session is untouched


def test_it_refuses_a_token_presented_for_another_mailbox_and_burns_it(
    client, webmail, stack_node
):
    anna, bob = holders(stack_node, webmail, "anna", "bob")
    sign_in(client, anna)
    query = sso_query(open_webmail(client))

    attacker = Browser(webmail, source="127.0.0.9")
    as_bob = attacker.get(f"/webmail/?_task=login&_action=login&_user={bob.address}"
                          f"&_mailhost_sso={query['_mailhost_sso']}")
    assert as_bob.status == 401
    assert not attacker.inbox().signed_in
    # The token was spent by the attempt: not even its own mailbox can use it now.
    again = attacker.get(f"/webmail/?_task=login&_action=login&_user={anna.address}"
                         f"&_mailhost_sso={query['_mailhost_sso']}")
    assert again.status == 401


def test_it_refuses_a_suspended_mailbox(client, webmail, stack_node):
    (anna,) = holders(stack_node, webmail, "anna")
    sign_in(client, anna)
    link = open_webmail(client)
    open_before = Browser(webmail)
    assert open_before.redeem(open_webmail(client)).signed_in
    assert open_before.can_read_inbox()

    mailbox_services.mailbox_set_status(actor=SYSTEM, mailbox=anna, status="suspended")
    reconcile_incremental(stack_node)
    wait_for(lambda: not imap_login(webmail, anna.address, PASSWORD), timeout=30)

    assert Browser(webmail).redeem(link).status == 401  # a token issued before the suspension
    assert not open_before.can_read_inbox()  # nor can a session opened before it read mail
    # The portal's own session ends with the suspension: no new token for it either.
    assert "/mailbox/login/" in client.post("/mailbox/webmail/")["Location"]


def test_it_refuses_expired_and_forged_tokens(webmail, stack_node):
    (anna,) = holders(stack_node, webmail, "anna")
    store = SsoStore(webmail.cfg.path(WEBMAIL_SSO_DB))
    stale = store.issue(address=anna.address, session="s-stale", organisation="Acme",
                        session_expires=int(time.time()) + 600, now=time.time() - 120)
    forged = base64.urlsafe_b64encode(b"\0" * 32).decode().rstrip("=")
    for token in (stale, forged, "short", "../../etc/passwd"):
        page = Browser(webmail).get(
            f"/webmail/?_task=login&_action=login&_user={anna.address}&_mailhost_sso={token}")
        assert page.status == 401, token


def test_signing_out_of_the_portal_ends_the_webmail_session(client, webmail, stack_node):
    (anna,) = holders(stack_node, webmail, "anna")
    sign_in(client, anna)
    holder = Browser(webmail)
    assert holder.redeem(open_webmail(client)).signed_in
    assert holder.can_read_inbox()

    assert client.post("/mailbox/logout/").status_code == 302
    assert not holder.inbox().signed_in
    assert not holder.can_read_inbox()
    assert SsoStore(webmail.cfg.path(WEBMAIL_SSO_DB)).live_sessions(anna.address) == 0


def test_the_portal_hands_tokens_only_to_the_signed_in_holder_by_post(
    client, client_factory, webmail, stack_node
):
    (anna,) = holders(stack_node, webmail, "anna")
    assert client.post("/mailbox/webmail/").status_code == 302  # to the sign-in page
    assert "/mailbox/login/" in client.post("/mailbox/webmail/")["Location"]
    sign_in(client, anna)
    assert client.get("/mailbox/webmail/").status_code == 405  # never by a link or <img>
    # Another site's form, posted with the holder's cookie but without the CSRF token.
    forged_form = client_factory(enforce_csrf_checks=True)
    forged_form.cookies = client.cookies
    assert forged_form.post("/mailbox/webmail/").status_code == 403


def _master_login(stack, source: str, as_user: str) -> bool:
    """SASL PLAIN as Roundcube does for an SSO session, from `source`."""
    secret = stack.cfg.path(WEBMAIL_MASTER_SECRET).read_text().strip()

    class FromSource(imaplib.IMAP4):
        def _create_socket(self, timeout):
            return socket.create_connection((self.host, self.port), timeout,
                                            source_address=(source, 0))

    client = FromSource("127.0.0.1", stack.cfg.ports["imap"], timeout=10)
    try:
        client.authenticate("PLAIN", lambda _: f"{as_user}\0{MASTER_LOGIN}\0{secret}".encode())
        return True
    except imaplib.IMAP4.error:
        return False
    finally:
        client.shutdown()


def test_the_master_login_works_from_the_node_itself_only(webmail, stack_node):
    (anna,) = holders(stack_node, webmail, "anna")
    # Even with the node's secret in hand, from anywhere but the node's own address: refused.
    assert not _master_login(webmail, "127.0.0.9", anna.address)
    assert _master_login(webmail, "127.0.0.1", anna.address)  # (the secret itself is right)
    # And nobody can type it into Roundcube's login form.
    secret = webmail.cfg.path(WEBMAIL_MASTER_SECRET).read_text().strip()
    for user in (MASTER_LOGIN, f"{anna.address}*{MASTER_LOGIN}"):
        page = Browser(webmail, source="127.0.0.9").password_login(user, secret)
        assert page.status == 401 and not page.signed_in


def test_password_logins_are_banned_by_the_browsers_address_and_app_passwords_work(
    webmail, stack_node, settings
):
    (anna,) = holders(stack_node, webmail, "anna")
    _, app_password = mailbox_services.app_password_create(
        actor=SYSTEM, mailbox=anna, name="webmail test")
    reconcile_incremental(stack_node)
    wait_for(lambda: imap_login(webmail, anna.address, app_password), timeout=30)
    assert Browser(webmail, source="127.0.0.10").password_login(anna.address, app_password
                                                                ).signed_in

    attacker = "127.0.0.11"
    for attempt in range(webmail.cfg.ban_policy.failures):
        page = Browser(webmail, source=attacker).password_login(anna.address, f"guess-{attempt}")
        assert page.status == 401
    # Banned by its own address: now even the right password is refused from there...
    assert not Browser(webmail, source=attacker).password_login(anna.address, PASSWORD).signed_in
    # ...while the holder, elsewhere, still gets in.
    assert Browser(webmail, source="127.0.0.12").password_login(anna.address, PASSWORD).signed_in


def test_webmail_sends_password_changes_to_the_portal(client, webmail, stack_node):
    (anna,) = holders(stack_node, webmail, "anna")
    sign_in(client, anna)
    holder = Browser(webmail)
    assert holder.redeem(open_webmail(client)).signed_in
    settings_page = holder.get("/webmail/?_task=settings")
    assert "plugin.mailhost-password" in settings_page.text
    page = holder.get("/webmail/?_task=settings&_action=plugin.mailhost-password&_framed=1")
    assert 'href="/mailbox/password/" target="_top"' in page.text
    assert 'name="_newpasswd"' not in page.text  # no second way to set a password
