"""Per-domain inbound policy in the portal and API, the sender lists on the real stack, and the
mail-flow figures collected from the node into the dashboard, domain page and API."""

import smtplib

import pytest
from django.test import Client

from identity.inbound import inbound_rule_add
from identity.models import InboundFlow, InboundPolicy, InboundSenderRule
from identity.tasks import collect_inbound
from mailboxes.services import domain_create, mailbox_create
from tenants.access import SYSTEM
from tenants.models import AuditEvent
from tests.api.conftest import ApiClient, make_token
from tests.factories import MembershipFactory, OrganisationFactory
from tests.inbound.conftest import PASSWORD
from tests.inbound.support import (
    Client as Outside,
)
from tests.inbound.support import (
    deliver_from_internet,
    fresh_ip,
    in_folder,
    marked,
    message,
    outside_server,
    outside_zone,
    send_from_internet,
)
from tests.stack import unique_domain, wait_for


@pytest.fixture
def tenant(db):
    org = OrganisationFactory()
    domain = domain_create(actor=SYSTEM, organisation=org, name=unique_domain("pol"))
    mailbox_create(actor=SYSTEM, domain=domain, local_part="ceo", password=PASSWORD)
    return org, domain


# --- API ----------------------------------------------------------------------------------------


def test_it_reads_and_changes_the_policy_over_the_api(tenant):
    org, domain = tenant
    api = ApiClient(make_token(org))

    changed = api.patch(f"/domains/{domain.name}/inbound",
                        {"require_spf": True, "greylisting": False, "junk_score": 5})
    added = api.post(f"/domains/{domain.name}/inbound/senders",
                     {"kind": "block", "sender": "@Spam.Example"})

    assert changed.status_code == 200, changed.content
    body = api.get(f"/domains/{domain.name}/inbound").json()
    assert body["require_spf"] is True and body["greylisting"] is False
    assert body["junk_score"] == 5.0 and body["reject_score"] is None
    assert added.status_code == 201 and added.json()["sender"] == "@spam.example"
    assert [s["sender"] for s in body["senders"]] == ["@spam.example"]
    assert len(body["flow"]) == 7
    actions = set(AuditEvent.objects.filter(organisation=org).values_list("action", flat=True))
    assert {"inbound.policy_update", "inbound.sender_add"} <= actions

    removed = api.delete(f"/domains/{domain.name}/inbound/senders/{added.json()['id']}")
    assert removed.status_code == 204
    assert not InboundSenderRule.objects.filter(domain=domain).exists()


def test_it_hides_another_tenants_policy_and_refuses_a_viewers_change(tenant):
    org, domain = tenant
    stranger = ApiClient(make_token(OrganisationFactory()))
    viewer = ApiClient(make_token(org, read_only=True))

    assert stranger.get(f"/domains/{domain.name}/inbound").status_code == 404
    assert stranger.patch(f"/domains/{domain.name}/inbound",
                          {"require_spf": True}).status_code == 404
    assert viewer.get(f"/domains/{domain.name}/inbound").status_code == 200
    assert viewer.patch(f"/domains/{domain.name}/inbound", {"require_spf": True}).status_code == 403
    assert viewer.post(f"/domains/{domain.name}/inbound/senders",
                       {"kind": "allow", "sender": "a@b.example"}).status_code == 403
    assert not InboundPolicy.objects.filter(domain=domain).exists()


@pytest.mark.parametrize("path, body, field", [
    ("/inbound", {"junk_score": 9, "reject_score": 8}, "junk_score"),
    ("/inbound", {"junk_score": -1}, "junk_score"),
    ("/inbound", {"reject_score": 10**9}, "reject_score"),
    ("/inbound/senders", {"kind": "allow", "sender": "not an address"}, "sender"),
    ("/inbound/senders", {"kind": "allow", "sender": "a@b.example",
                          "mailbox": "ceo@elsewhere.example"}, "mailbox"),
])
def test_it_refuses_bad_input_with_a_clear_422(tenant, path, body, field):
    org, domain = tenant
    api = ApiClient(make_token(org))
    method = api.patch if path == "/inbound" else api.post

    response = method(f"/domains/{domain.name}{path}", body)

    assert response.status_code == 422, response.content
    assert response.json().get("field") == field and response.json()["detail"]
    assert not InboundSenderRule.objects.filter(domain=domain).exists()
    assert not InboundPolicy.objects.filter(domain=domain, junk_score__isnull=False).exists()


def test_it_refuses_a_duplicate_sender_with_409(tenant):
    org, domain = tenant
    api = ApiClient(make_token(org))
    body = {"kind": "allow", "sender": "friend@partner.example"}
    assert api.post(f"/domains/{domain.name}/inbound/senders", body).status_code == 201
    assert api.post(f"/domains/{domain.name}/inbound/senders", body).status_code == 409


# --- pages ------------------------------------------------------------------------------------


def _signed_in(org, role: str) -> Client:
    user = MembershipFactory(organisation=org, role=role).user
    user.save()
    client = Client()
    client.force_login(user)
    return client


def test_it_shows_and_saves_the_policy_page(tenant):
    org, domain = tenant
    owner = _signed_in(org, "owner")
    url = f"/mail-admin/{org.slug}/domains/{domain.name}/inbound/"

    page = owner.get(url)
    saved = owner.post(url, {"require_dmarc": "on", "greylisting": "on", "junk_score": "7"})
    bad = owner.post(url, {"junk_score": "20", "reject_score": "10"})

    assert page.status_code == 200 and b"<svg" in page.content
    assert saved.status_code == 302
    assert InboundPolicy.objects.get(domain=domain).require_dmarc
    assert bad.status_code == 422 and b"below the reject score" in bad.content
    viewer = _signed_in(org, "viewer")
    assert viewer.post(url, {"require_spf": "on"}).status_code == 403
    assert _signed_in(OrganisationFactory(), "owner").get(
        f"/mail-admin/{org.slug}/domains/{domain.name}/inbound/").status_code == 404


# --- the sender lists and the figures, on the real stack ---------------------------------------


@pytest.mark.stack
def test_it_refuses_a_blocked_sender_and_spares_an_allowed_one_from_greylisting(hosted,
                                                                                mail_stack):
    victim = hosted(prefix="lst", mailboxes=("ceo", "ops"))
    friend_domain = f"friend-{victim.name}"
    outside_zone(mail_stack, friend_domain, [f"{friend_domain}. 300 IN MX 10 mx.{friend_domain}."])
    friend = outside_server(mail_stack, friend_domain, fresh_ip())
    inbound_rule_add(actor=SYSTEM, domain=victim.domain, kind="allow",
                     sender=f"boss@{friend_domain}", mailbox=victim.address("ceo"))
    inbound_rule_add(actor=SYSTEM, domain=victim.domain, kind="block", sender=f"@{friend_domain}")
    victim.reconcile()
    allowed = marked("from the boss")

    def through():  # the map reaches Rspamd within its watch interval
        try:
            return send_from_internet(mail_stack, friend, f"boss@{friend_domain}",
                                      victim.address("ceo"),
                                      message(f"boss@{friend_domain}", victim.address("ceo"),
                                              allowed))
        except smtplib.SMTPDataError:
            return None

    wait_for(through, timeout=15, interval=0.5)  # first attempt accepted: no greylisting
    with pytest.raises(smtplib.SMTPDataError) as blocked:
        send_from_internet(mail_stack, friend, f"sales@{friend_domain}", victim.address("ops"),
                           message(f"sales@{friend_domain}", victim.address("ops"), "buy"))
    assert 500 <= blocked.value.smtp_code < 600
    assert b"does not accept mail from this sender" in blocked.value.smtp_error
    wait_for(lambda: in_folder(mail_stack, victim.address("ceo"), PASSWORD, "INBOX", allowed))


@pytest.mark.stack
def test_it_collects_mail_flow_figures_into_the_dashboard_and_api(hosted, mail_stack, client):
    victim = hosted(prefix="flw")
    bot = Outside(ip=fresh_ip(), name="[UNAVAILABLE]")
    sender = f"promo@nowhere-{victim.name}"
    deliver_from_internet(mail_stack, bot, sender, victim.address("ceo"),
                          message(sender, victim.address("ceo"), marked("junk me")))
    with pytest.raises(smtplib.SMTPDataError):
        send_from_internet(mail_stack, bot, sender, victim.address("ceo"),
                           message(sender, victim.address("ceo"), "gtube", body=(
                               "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X")))

    def counted() -> dict:
        collect_inbound(victim.node.pk)
        rows = InboundFlow.objects.filter(domain=victim.name)
        found = dict(rows.values_list("outcome", "count"))
        return found if {"junked", "greylisted", "spam_rejected"} <= set(found) else {}

    figures = wait_for(counted, timeout=40, interval=1)
    assert figures["junked"] == 1 and figures["spam_rejected"] == 1 and figures["greylisted"] >= 1

    org = victim.domain.organisation
    api = ApiClient(make_token(org))
    (today,) = [d for d in api.get("/inbound/flow").json()["days"] if d["total"]]
    assert today["junked"] == 1 and today["spam_rejected"] == 1
    other = ApiClient(make_token(OrganisationFactory())).get("/inbound/flow").json()
    assert not any(d["total"] for d in other["days"])
    dashboard = _signed_in(org, "viewer").get(f"/mail-admin/{org.slug}/").content.decode()
    assert "Inbound mail, last 7 days" in dashboard and "<svg" in dashboard
    assert "1 spam_rejected" in dashboard
