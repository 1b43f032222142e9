"""Finding 4: Django admin's sign-in cannot skip the second factor or the login rate limit.

The attack: a staff account protected by TOTP, whose password alone the attacker knows. They
post it to /admin/login/ (which used to sign in on the password alone) and to allauth's own
form, then try /admin/ and /mail-admin/. Only password + a real TOTP code from the stored
secret gets in. The browser test does the same in Chromium.
"""

import re

import pytest
from allauth.mfa.totp.internal.auth import (
    TOTP,
    format_hotp_value,
    generate_totp_secret,
    hotp_value,
    yield_hotp_counters_from_time,
)
from django.core.cache import cache
from django.test import Client
from playwright.sync_api import Page, expect

from tenants.services import user_create_staff

STAFF = ("staff@ops.test", "staff-password-9")


def totp_code(secret: str) -> str:
    return format_hotp_value(hotp_value(secret, next(yield_hotp_counters_from_time())))


@pytest.fixture
def staff_with_totp(db):
    cache.clear()  # allauth's rate limits and used-code marks live in the shared cache
    user = user_create_staff(email=STAFF[0], password=STAFF[1])
    secret = generate_totp_secret()
    TOTP.activate(user, secret)
    yield user, secret
    cache.clear()


def signed_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


def reaches_admin_and_portal(client: Client) -> tuple[int, int]:
    return client.get("/admin/").status_code, client.get("/mail-admin/").status_code


def test_it_never_signs_in_through_the_admin_password_form(staff_with_totp):
    attacker = Client()
    response = attacker.post(
        "/admin/login/?next=/admin/", {"username": STAFF[0], "password": STAFF[1]}
    )
    assert response.status_code == 302
    assert response.url.startswith("/accounts/login/?next=/admin/")
    assert not signed_in(attacker)
    assert reaches_admin_and_portal(attacker) == (302, 302)
    assert attacker.get("/admin/login/").url.startswith("/accounts/login/")


def test_it_keeps_the_password_alone_out_of_admin_and_mail_admin(staff_with_totp):
    user, secret = staff_with_totp
    attacker = Client()
    response = attacker.post("/accounts/login/?next=/admin/",
                             {"login": STAFF[0], "password": STAFF[1]})
    assert response.status_code == 302 and "/2fa/authenticate" in response.url
    assert not signed_in(attacker)
    assert reaches_admin_and_portal(attacker) == (302, 302)
    assert attacker.post(response.url, {"code": "000000"}).status_code == 200  # wrong code
    assert reaches_admin_and_portal(attacker) == (302, 302)


def test_it_lets_staff_in_with_password_and_totp_code(staff_with_totp):
    user, secret = staff_with_totp
    staff = Client()
    step = staff.post("/accounts/login/?next=/admin/", {"login": STAFF[0], "password": STAFF[1]})
    done = staff.post(step.url, {"code": totp_code(secret)})
    assert done.status_code == 302 and done.url == "/admin/"
    assert staff.session["_auth_user_id"] == str(user.pk)
    assert staff.get("/admin/").status_code == 200
    assert staff.get("/mail-admin/").status_code in (200, 302)
    assert staff.get("/admin/login/?next=/admin/tenants/").url == "/admin/tenants/"


def test_it_keeps_a_signed_in_non_staff_user_out_without_a_password_form(db):
    from tests.factories import UserFactory

    user = UserFactory()
    user.save()
    client = Client()
    client.force_login(user)
    response = client.get("/admin/login/")
    assert response.status_code == 403 and b'name="password"' not in response.content
    response = client.post("/admin/login/", {"username": STAFF[0], "password": STAFF[1]})
    assert response.status_code == 403


def test_it_does_not_open_redirect_from_admin_login(staff_with_totp):
    staff = Client()
    staff.force_login(staff_with_totp[0])
    assert staff.get("/admin/login/?next=https://evil.test/").url == "/admin/"


@pytest.mark.browser
def test_it_takes_staff_through_totp_to_admin_in_a_browser(
    page: Page, live_server, transactional_db
):
    cache.clear()
    user = user_create_staff(email=STAFF[0], password=STAFF[1])
    secret = generate_totp_secret()
    TOTP.activate(user, secret)

    page.goto(live_server.url + "/admin/login/")  # admin's own form is gone: allauth's
    expect(page).to_have_url(re.compile(r"/accounts/login/\?next=/admin/"))
    page.get_by_label("Email").fill(STAFF[0])
    page.get_by_label("Password").fill(STAFF[1])
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/accounts/2fa/authenticate/"))

    for inside in ("/admin/", "/mail-admin/"):  # the password alone: still outside, asked
        page.goto(live_server.url + inside)       # for the code again
        expect(page).to_have_url(re.compile(r"/accounts/(2fa/authenticate|login)/"))
        expect(page.get_by_role("heading", level=1)).not_to_have_text(re.compile("admin", re.I))
        expect(page.locator("#site-name")).to_have_count(0)

    page.goto(live_server.url + "/admin/")
    expect(page).to_have_url(re.compile(r"/accounts/2fa/authenticate/"))
    page.get_by_label("Code").fill(totp_code(secret))
    page.get_by_role("button", name="Sign In").click()
    expect(page).to_have_url(re.compile(r"/admin/$"))
    expect(page.locator("#site-name")).to_be_visible()
    cache.clear()
