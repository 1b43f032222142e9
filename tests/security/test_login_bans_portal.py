"""The portal's logins count towards the node's bans, refuse banned addresses, and operators
see and lift bans in /mail-admin/bans/ and the API, each only as far as their tenancy reaches.

The attacker is a web client with its own address (REMOTE_ADDR 127.0.0.4x); the mail checks
connect to the real Dovecot from the same address. Portal and node share the ban store.
"""

import pytest
from allauth.account.models import EmailAddress
from django.core.cache import cache
from django.test import Client

from mailboxes import portal_views
from mailhost.redis import get_redis
from tenants.models import AuditEvent
from tests.api.conftest import ApiClient, make_token
from tests.factories import (
    TEST_PASSWORD,
    DomainFactory,
    MailboxFactory,
    MembershipFactory,
    OrganisationFactory,
    UserFactory,
)
from tests.security.attack import imap_login
from tests.security.bans_support import (
    PASSWORD,
    ban_node,  # noqa: F401  (fixture)
    ban_stack,  # noqa: F401  (fixture)
    victim,
)
from tests.stack import unique_domain

pytestmark = [pytest.mark.stack, pytest.mark.django_db]

FAILURES = 3  # bans_support.TEST_BAN_SETTINGS


@pytest.fixture(autouse=True)
def fresh_web_rate_limits():
    """The portal's own per-address limits (Redis, allauth's cache) are not under test."""
    cache.clear()
    for key in get_redis().scan_iter("mailhost:portal-login*"):
        get_redis().delete(key)


def web(ip: str) -> Client:
    return Client(REMOTE_ADDR=ip)


def operator(**kwargs):
    user = UserFactory(**kwargs)
    EmailAddress.objects.create(user=user, email=user.email, verified=True, primary=True)
    return user


def guess_over_imap(stack, attacker: str, *addresses: str) -> None:
    for i in range(FAILURES):
        assert not imap_login(stack, attacker, addresses[i % len(addresses)], "guess")


def test_it_bans_an_address_that_fails_mailbox_portal_logins_from_web_and_mail(ban_node):  # noqa: F811
    domain = unique_domain("web")
    address = victim(ban_node, domain)
    MailboxFactory(domain=DomainFactory(name=domain), local_part="victim")
    attacker, staff = web("127.0.0.41"), operator(is_staff=True, is_superuser=True)
    for _ in range(FAILURES):
        assert attacker.post("/mailbox/login/", {"address": address, "password": "guess"}) \
            .status_code == 401

    right = attacker.post("/mailbox/login/", {"address": address, "password": TEST_PASSWORD})
    assert right.status_code == 403 and b"Too many failed logins" in right.content
    assert portal_views.SESSION_ID not in attacker.session
    assert not imap_login(ban_node, "127.0.0.41", address, PASSWORD)
    operator_login = attacker.post(
        "/accounts/login/", {"login": staff.email, "password": TEST_PASSWORD}
    )
    assert operator_login.status_code == 403 and "_auth_user_id" not in attacker.session
    assert attacker.get("/admin/login/", follow=True).status_code == 403

    bystander = web("127.0.0.42")
    signed_in = bystander.post("/mailbox/login/", {"address": address, "password": TEST_PASSWORD})
    assert signed_in.status_code == 302
    assert imap_login(ban_node, "127.0.0.42", address, PASSWORD)


def test_it_bans_an_address_that_fails_operator_logins(ban_node):  # noqa: F811
    address, staff = victim(ban_node), operator(is_staff=True, is_superuser=True)
    attacker = web("127.0.0.43")
    for _ in range(FAILURES):
        attacker.post("/accounts/login/", {"login": staff.email, "password": "guess"})
        assert "_auth_user_id" not in attacker.session

    assert attacker.post(
        "/accounts/login/", {"login": staff.email, "password": TEST_PASSWORD}
    ).status_code == 403
    assert "_auth_user_id" not in attacker.session
    assert not imap_login(ban_node, "127.0.0.43", address, PASSWORD)
    assert web("127.0.0.44").post(
        "/accounts/login/", {"login": staff.email, "password": TEST_PASSWORD}
    ).status_code == 302


def test_it_lets_staff_lift_a_ban_in_the_page(ban_node):  # noqa: F811
    address, attacker = victim(ban_node), "127.0.0.45"
    guess_over_imap(ban_node, attacker, address)
    assert not imap_login(ban_node, attacker, address, PASSWORD)
    staff = Client()
    staff.force_login(operator(is_staff=True, is_superuser=True))

    page = staff.get("/mail-admin/bans/")
    assert page.status_code == 200
    assert attacker.encode() in page.content and address.encode() in page.content
    assert staff.get(f"/mail-admin/bans/{attacker}/lift/").status_code == 200  # asks first
    after = staff.post(f"/mail-admin/bans/{attacker}/lift/", follow=True)
    assert f"The ban on {attacker} was lifted.".encode() in after.content
    assert f"<code>{attacker}</code>".encode() not in after.content

    assert imap_login(ban_node, attacker, address, PASSWORD)
    event = AuditEvent.objects.get(action="ban.lift", target=attacker)
    assert event.organisation is None and event.before["accounts"] == [address]


def test_it_lets_an_organisation_admin_lift_a_ban_on_its_own_addresses_in_the_api(ban_node):  # noqa: F811
    organisation, domain = OrganisationFactory(), unique_domain("api")
    DomainFactory(organisation=organisation, name=domain)
    address, attacker = victim(ban_node, domain), "127.0.0.46"
    guess_over_imap(ban_node, attacker, address)
    api = ApiClient(make_token(organisation))

    listed = api.get("/bans").json()
    assert [(b["ip"], b["accounts"]) for b in listed["items"]] == [(attacker, [address])]
    lifted = api.delete(f"/bans/{attacker}")
    assert lifted.status_code == 200 and lifted.json()["ip"] == attacker
    assert imap_login(ban_node, attacker, address, PASSWORD)
    assert api.get(f"/bans/{attacker}").status_code == 404
    assert AuditEvent.objects.filter(
        action="ban.lift", target=attacker, organisation=organisation
    ).exists()


def test_it_hides_a_ban_from_other_tenants_and_refuses_a_viewer_to_lift_it(ban_node):  # noqa: F811
    ours, theirs = OrganisationFactory(), OrganisationFactory()
    our_domain, their_domain = unique_domain("ours"), unique_domain("theirs")
    DomainFactory(organisation=ours, name=our_domain)
    DomainFactory(organisation=theirs, name=their_domain)
    our_victim, their_victim = victim(ban_node, our_domain), victim(ban_node, their_domain)
    unrelated = OrganisationFactory()
    attacker = "127.0.0.47"
    guess_over_imap(ban_node, attacker, our_victim, their_victim)  # ours, theirs, ours

    # Each tenant sees the ban with its own addresses only; a third sees nothing of it.
    ours_api, theirs_api = ApiClient(make_token(ours)), ApiClient(make_token(theirs))
    assert ours_api.get(f"/bans/{attacker}").json()["accounts"] == [our_victim]
    assert theirs_api.get(f"/bans/{attacker}").json()["accounts"] == [their_victim]
    outsider = ApiClient(make_token(unrelated))
    assert outsider.get("/bans").json() == {"count": 0, "items": []}
    assert outsider.get(f"/bans/{attacker}").status_code == 404
    assert outsider.delete(f"/bans/{attacker}").status_code == 404
    outsider_admin = Client()
    outsider_admin.force_login(MembershipFactory(organisation=unrelated, role="admin").user)
    assert attacker.encode() not in outsider_admin.get("/mail-admin/bans/").content
    assert outsider_admin.post(f"/mail-admin/bans/{attacker}/lift/").status_code == 404

    # A read-only token and a viewer of the targeted tenant may look but not lift.
    assert ApiClient(make_token(ours, read_only=True)).delete(f"/bans/{attacker}") \
        .status_code == 403
    viewer = Client()
    viewer.force_login(MembershipFactory(organisation=ours, role="viewer").user)
    assert attacker.encode() in viewer.get("/mail-admin/bans/").content
    assert viewer.post(f"/mail-admin/bans/{attacker}/lift/").status_code == 403

    assert not imap_login(ban_node, attacker, our_victim, PASSWORD)  # still banned
    assert not AuditEvent.objects.filter(action="ban.lift", target=attacker).exists()


def test_it_answers_a_clear_error_for_a_malformed_address(ban_node):  # noqa: F811
    api = ApiClient(make_token(OrganisationFactory()))
    response = api.delete("/bans/not-an-ip")
    assert response.status_code == 422 and "not an IP address" in response.json()["detail"]


def test_it_lifts_a_ban_from_the_command_line(ban_node, capsys):  # noqa: F811
    from django.core.management import call_command

    address, attacker = victim(ban_node), "127.0.0.48"
    guess_over_imap(ban_node, attacker, address)
    call_command("bans", "list")
    assert f"{attacker}\tuntil " in capsys.readouterr().out

    call_command("bans", "lift", attacker)
    assert imap_login(ban_node, attacker, address, PASSWORD)
    assert AuditEvent.objects.filter(
        action="ban.lift", target=attacker, actor_label="manage.py bans"
    ).exists()
