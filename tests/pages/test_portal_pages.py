"""The signed-in mailbox holder's pages."""

import plistlib

import pytest

from mailboxes.models import AppPassword, Mailbox
from mailhost.passwords import verify_password
from tests.factories import TEST_PASSWORD, AppPasswordFactory, MailboxFactory

pytestmark = pytest.mark.usefixtures("clean_rate_limits")


@pytest.fixture
def holder_client(client, mailbox):
    response = client.post(
        "/mailbox/login/", {"address": mailbox.address, "password": TEST_PASSWORD}
    )
    assert response.status_code == 302
    return client


def test_it_shows_connection_settings_and_webmail(holder_client, settings):
    settings.MAILHOST_WEBMAIL_URL = "https://webmail.acme.test/"
    settings.MAILHOST_HOSTNAME = "mail.provider.test"
    body = holder_client.get("/mailbox/setup/").content.decode()
    for text in (
        "mail.provider.test",
        str(settings.MAILHOST_PORTS["imaps"]),
        str(settings.MAILHOST_PORTS["submissions"]),
        "anna@acme.test",
        "Thunderbird",
        "Outlook",
        "Android",
        "iPhone",
        "https://webmail.acme.test/",
    ):
        assert text in body


def test_it_downloads_an_apple_profile_without_the_password(holder_client, settings):
    response = holder_client.get("/mailbox/setup/apple.mobileconfig")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/x-apple-aspen-config"
    profile = plistlib.loads(response.content)
    account = profile["PayloadContent"][0]
    assert account["EmailAddress"] == "anna@acme.test"
    assert account["IncomingMailServerPortNumber"] == settings.MAILHOST_PORTS["imaps"]
    assert "IncomingPassword" not in account


def test_it_shows_the_calendar_and_contacts_urls_for_each_kind_of_app(holder_client, settings):
    settings.MAILHOST_HOSTNAME = "mail.provider.test"
    settings.MAILHOST_PORTAL_URL = "https://mail.provider.test"
    settings.MAILHOST_PUBLIC_PORTS = {"https": 0}
    body = holder_client.get("/mailbox/setup/").content.decode()
    assert '<code id="dav-url">https://mail.provider.test/dav/</code>' in body
    assert ('<code id="dav-principal">https://mail.provider.test/dav/anna@acme.test/</code>'
            in body)
    for text in ("Calendars and contacts", "CalDAV", "CardDAV", "DAVx⁵", "Thunderbird",
                 "Add CalDAV Account"):
        assert text in body


def test_the_apple_profile_sets_up_calendars_and_contacts_of_the_same_account(
    holder_client, settings
):
    settings.MAILHOST_HOSTNAME = "mail.provider.test"
    settings.MAILHOST_PORTAL_URL = "http://mail.provider.test:8000"  # plain: gunicorn itself
    settings.MAILHOST_PORTS = dict(settings.MAILHOST_PORTS, https=2443)  # the edge's
    settings.MAILHOST_PUBLIC_PORTS = {"https": 0}
    profile = plistlib.loads(holder_client.get("/mailbox/setup/apple.mobileconfig").content)
    payloads = {p["PayloadType"]: p for p in profile["PayloadContent"]}
    assert set(payloads) == {
        "com.apple.mail.managed", "com.apple.caldav.account", "com.apple.carddav.account"
    }
    for kind in ("CalDAV", "CardDAV"):
        payload = payloads[f"com.apple.{kind.lower()}.account"]
        assert payload[f"{kind}HostName"] == "mail.provider.test"
        assert payload[f"{kind}Port"] == 2443
        assert payload[f"{kind}UseSSL"] is True
        assert payload[f"{kind}Username"] == "anna@acme.test"
        assert (payload[f"{kind}PrincipalURL"]
                == "https://mail.provider.test:2443/dav/anna@acme.test/")
        assert not any("Password" in key for key in payload)
    identifiers = [p["PayloadIdentifier"] for p in profile["PayloadContent"]]
    uuids = [p["PayloadUUID"] for p in profile["PayloadContent"]]
    assert len(set(identifiers)) == len(set(uuids)) == 3


def test_it_needs_a_signed_in_holder(client, db):
    for path in ("/mailbox/", "/mailbox/setup/", "/mailbox/vacation/", "/mailbox/app-passwords/"):
        assert client.get(path)["Location"].startswith("/mailbox/login/")


def test_it_changes_the_password_and_ends_other_sessions(holder_client, client_factory, mailbox):
    other_device = client_factory()
    other_device.post("/mailbox/login/", {"address": mailbox.address, "password": TEST_PASSWORD})
    response = holder_client.post(
        "/mailbox/password/",
        {
            "current_password": TEST_PASSWORD,
            "new_password": "brand-new-password",
            "confirm_password": "brand-new-password",
        },
    )
    assert response.status_code == 302
    assert verify_password("brand-new-password", Mailbox.objects.get(pk=mailbox.pk).password_hash)
    assert holder_client.get("/mailbox/").status_code == 200  # this session goes on
    assert other_device.get("/mailbox/").status_code == 302  # the other one ended


def test_it_refuses_a_wrong_current_password_or_mismatch(holder_client, mailbox):
    response = holder_client.post(
        "/mailbox/password/",
        {
            "current_password": "not-the-password",
            "new_password": "brand-new-password",
            "confirm_password": "brand-new-password",
        },
    )
    assert response.status_code == 422 and b"current password is not right" in response.content
    response = holder_client.post(
        "/mailbox/password/",
        {
            "current_password": TEST_PASSWORD,
            "new_password": "brand-new-password",
            "confirm_password": "different-password",
        },
    )
    assert response.status_code == 422 and b"differ" in response.content


def test_it_sets_forwarding(holder_client, mailbox):
    response = holder_client.post("/mailbox/forwarding/", {"forward_to": "me@home.test"})
    assert response.status_code == 302
    mailbox.refresh_from_db()
    assert mailbox.forward_to == ["me@home.test"] and mailbox.forward_keep_copy is False
    response = holder_client.post("/mailbox/forwarding/", {"forward_to": "bad address"})
    assert response.status_code == 422


def test_it_sets_a_vacation_reply(holder_client, mailbox):
    response = holder_client.post(
        "/mailbox/vacation/",
        {
            "enabled": "on",
            "subject": "Away",
            "body": "Back on Monday.",
            "start": "2026-07-01",
            "end": "2026-07-14",
        },
    )
    assert response.status_code == 302
    mailbox.refresh_from_db()
    assert mailbox.vacation_enabled and mailbox.vacation_end.isoformat() == "2026-07-14"
    response = holder_client.post(
        "/mailbox/vacation/",
        {
            "enabled": "on",
            "subject": "Away",
            "body": "x",
            "start": "2026-07-14",
            "end": "2026-07-01",
        },
    )
    assert response.status_code == 422 and b"cannot be before the first day" in response.content


def test_it_creates_lists_and_revokes_app_passwords(holder_client, mailbox):
    response = holder_client.post("/mailbox/app-passwords/", {"name": "Phone"})
    assert response.status_code == 200 and "no-store" in response["Cache-Control"]
    app_password = AppPassword.objects.get(mailbox=mailbox)
    assert verify_password(response.context["raw"], app_password.password_hash)
    assert b"Phone" in holder_client.get("/mailbox/app-passwords/").content
    url = f"/mailbox/app-passwords/{app_password.pk}/revoke/"
    assert holder_client.get(url).status_code == 200
    assert holder_client.post(url).status_code == 302
    app_password.refresh_from_db()
    assert app_password.revoked_at is not None
    assert holder_client.post("/mailbox/app-passwords/", {"name": ""}).status_code == 422


def test_it_is_404_for_another_mailboxs_app_password(holder_client, mailbox):
    other = AppPasswordFactory(mailbox=MailboxFactory(domain=mailbox.domain))
    assert holder_client.post(f"/mailbox/app-passwords/{other.pk}/revoke/").status_code == 404
    other.refresh_from_db()
    assert other.revoked_at is None


def test_it_lists_app_passwords_in_constant_queries(
    holder_client, mailbox, assert_constant_queries
):
    AppPasswordFactory(mailbox=mailbox)
    assert_constant_queries(
        holder_client,
        "/mailbox/app-passwords/",
        lambda: [AppPasswordFactory(mailbox=mailbox) for _ in range(10)],
    )
