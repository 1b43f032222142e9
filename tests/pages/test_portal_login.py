"""Mailbox holders sign in to /mailbox/ with the mailbox address and password."""

import time

import pytest
from django.test import Client

from mailboxes import portal_views
from tests.factories import TEST_PASSWORD, MailboxFactory

LOGIN = "/mailbox/login/"

pytestmark = pytest.mark.usefixtures("clean_rate_limits")


def sign_in(client, address="anna@acme.test", password=TEST_PASSWORD):
    return client.post(LOGIN, {"address": address, "password": password})


def test_it_signs_a_holder_in_and_out(client, mailbox):
    response = sign_in(client, "Anna@ACME.test")
    assert response.status_code == 302 and response["Location"] == "/mailbox/"
    assert client.session[portal_views.SESSION_ID] == mailbox.pk
    assert b"anna@acme.test" in client.get("/mailbox/").content
    assert client.post("/mailbox/logout/").status_code == 302
    assert client.get("/mailbox/")["Location"].startswith(LOGIN)


def test_it_is_not_an_operator_sign_in(client, mailbox):
    sign_in(client)
    assert "_auth_user_id" not in client.session
    assert client.get("/mail-admin/")["Location"].startswith("/accounts/login/")


def test_it_refuses_a_wrong_password_or_unknown_address(client, mailbox):
    response = sign_in(client, password="wrong-password-1")
    assert response.status_code == 401 and b"address or password is not right" in response.content
    response = sign_in(client, address="nobody@acme.test")
    assert response.status_code == 401 and b"address or password is not right" in response.content


def test_it_refuses_bad_input(client, db):
    assert client.post(LOGIN, {"address": "", "password": ""}).status_code == 422


def test_it_refuses_suspended_and_deleted_mailboxes(client, mailbox):
    MailboxFactory(domain=mailbox.domain, local_part="sus", status="suspended")
    assert sign_in(client, "sus@acme.test").status_code == 401


def test_it_rate_limits_failed_sign_ins_per_ip_and_address(client, mailbox, settings):
    settings.MAILBOX_PORTAL_LOGIN_ATTEMPTS = 3
    for _ in range(3):
        assert sign_in(client, password="wrong-password-1").status_code == 401
    response = sign_in(client)  # even the right password now waits
    assert response.status_code == 429 and b"Too many failed sign-ins" in response.content
    other = Client(REMOTE_ADDR="192.0.2.99")
    assert sign_in(other).status_code == 302  # another network is not locked out


def test_it_rate_limits_one_ip_spraying_many_addresses(client, mailbox, settings):
    settings.MAILBOX_PORTAL_LOGIN_IP_ATTEMPTS = 4
    for n in range(4):
        sign_in(client, address=f"guess{n}@acme.test")
    assert sign_in(client).status_code == 429


def test_it_ends_an_idle_or_old_session(client, mailbox, settings):
    sign_in(client)
    session = client.session
    session[portal_views.SESSION_SEEN_AT] = time.time() - settings.MAILBOX_PORTAL_IDLE_SECONDS - 5
    session.save()
    response = client.get("/mailbox/", follow=True)
    assert b"Your session expired" in response.content
    sign_in(client)
    session = client.session
    session[portal_views.SESSION_LOGIN_AT] = time.time() - settings.MAILBOX_PORTAL_MAX_SECONDS - 5
    session.save()
    assert client.get("/mailbox/").status_code == 302


def test_it_ends_the_session_when_the_mailbox_is_suspended(client, mailbox):
    sign_in(client)
    mailbox.status = "suspended"
    mailbox.save()
    assert client.get("/mailbox/").status_code == 302


def test_it_only_redirects_within_the_portal_after_sign_in(client, mailbox):
    response = client.post(
        LOGIN + "?next=https://evil.test/", {"address": "anna@acme.test", "password": TEST_PASSWORD}
    )
    assert response["Location"] == "/mailbox/"
    client.post("/mailbox/logout/")
    response = client.post(
        LOGIN + "?next=/mailbox/vacation/", {"address": "anna@acme.test", "password": TEST_PASSWORD}
    )
    assert response["Location"] == "/mailbox/vacation/"
