"""Operators sign in with django-allauth: e-mail as login, verified address, TOTP, rate limits."""

import pytest
from allauth.account.models import EmailAddress
from allauth.mfa.totp.internal.auth import (
    TOTP,
    format_hotp_value,
    generate_totp_secret,
    hotp_value,
    yield_hotp_counters_from_time,
)
from django.core.cache import cache

from tests.factories import TEST_PASSWORD, UserFactory

pytestmark = pytest.mark.django_db
LOGIN = "/accounts/login/"


@pytest.fixture(autouse=True)
def fresh_rate_limits():
    cache.clear()
    yield
    cache.clear()


def operator(verified: bool = True):
    user = UserFactory()
    EmailAddress.objects.create(user=user, email=user.email, verified=verified, primary=True)
    return user


def sign_in(client, email: str, password: str = TEST_PASSWORD):
    return client.post(LOGIN, {"login": email, "password": password})


def test_it_signs_an_operator_in_with_their_email_address(client):
    user = operator()
    response = sign_in(client, user.email.upper())
    assert response.status_code == 302 and response.url == "/mail-admin/"
    assert client.session["_auth_user_id"] == str(user.pk)


def test_it_refuses_a_wrong_password_without_saying_which_part_was_wrong(client):
    user = operator()
    response = sign_in(client, user.email, "not the password")
    assert response.status_code == 200
    assert "_auth_user_id" not in client.session
    assert b"not correct" in response.content


def test_it_holds_back_an_unverified_address(client):
    user = operator(verified=False)
    response = sign_in(client, user.email)
    assert response.status_code == 302 and "confirm-email" in response.url
    assert "_auth_user_id" not in client.session


def test_it_asks_for_the_totp_code_once_mfa_is_on(client):
    user = operator()
    secret = generate_totp_secret()
    TOTP.activate(user, secret)
    response = sign_in(client, user.email)
    assert response.status_code == 302 and "/2fa/authenticate" in response.url
    assert "_auth_user_id" not in client.session
    assert client.post(response.url, {"code": "000000"}).status_code == 200
    code = format_hotp_value(hotp_value(secret, next(yield_hotp_counters_from_time())))
    assert client.post(response.url, {"code": code}).status_code == 302
    assert client.session["_auth_user_id"] == str(user.pk)


def test_it_rate_limits_failed_logins_for_an_address(client):
    user = operator()
    for _ in range(5):
        sign_in(client, user.email, "guess")
    response = sign_in(client, user.email)  # even the right password waits now
    assert "_auth_user_id" not in client.session
    assert response.status_code == 429 or b"Too many failed login attempts" in response.content
