"""Attacks on domain ownership (issue 10, finding 3), played by organisation B against A.

Before ownership verification any organisation could host any name: gmail.com (whose
catch-all then captured local users' mail to Gmail), the mail host's own name, a subdomain of
another tenant's domain, a Cyrillic lookalike; and 409 `domain_taken` told B what A hosts.
Each test acts as the attacker through the API or the pages and asserts what the victim sees:
the answer B gets, the rows on the mail node, the mail that is (not) delivered, its DKIM
signature verified with dkimpy against a real Knot DNS server.
"""

import itertools
import os
import re
import smtplib
import sqlite3

import dkim
import pytest
from django.test import Client

from mailboxes import services
from mailboxes.models import Domain
from mailhost.passwords import generate_password
from nodes.models import MailNode
from tenants.access import SYSTEM
from tenants.models import AuditEvent
from tests.factories import MembershipFactory, OrganisationFactory, UserFactory
from tests.identity.support import api_for, fragment_for, lookup_at
from tests.stack import (
    fetch_inbox,
    fetch_inbox_raw,
    imap_login,
    make_message,
    smtp_send,
    unique_domain,
    wait_for,
)

_counter = itertools.count()


def real_domain(prefix: str, tld: str = "com") -> str:
    """A name under a real TLD (no special-use exemption), unique in this session."""
    return f"{prefix}{os.getpid()}x{next(_counter)}.{tld}"


@pytest.fixture
def acme(db):
    """Organisation A, the victim."""
    return OrganisationFactory(slug="acme", name="Acme")


@pytest.fixture
def evil(db):
    """Organisation B, the attacker, acting through its own read-write token."""
    return OrganisationFactory(slug="evil", name="Evil Corp")


@pytest.fixture
def evil_api(evil):
    return api_for(evil)


def verified_domain(organisation, name: str) -> Domain:
    domain = services.domain_create(actor=SYSTEM, organisation=organisation, name=name)
    # (getattr: so the attacks also run, and fail, on a build without ownership verification)
    if not getattr(domain, "is_verified", True):
        domain = services.domain_mark_verified(actor=SYSTEM, domain=domain, method="staff")
    return domain


def claim_shape(body: dict) -> dict:
    """An answer to a claim with what differs between any two claims taken out: the name, the
    token, the times and the revision."""
    ignored = {"name", "display_name", "created_at", "revision"}
    shape = {key: value for key, value in body.items() if key not in ignored}
    shape["role_addresses"] = [a.replace(body["name"], "NAME") for a in body["role_addresses"]]
    shape["verification"] = {
        "name": body["verification"]["name"].replace(body["name"], "NAME"),
        "type": body["verification"]["type"],
        "value": body["verification"]["value"].split("=")[0],
    }
    return shape


# --- refused at creation ---------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("name", ["co.uk", "github.io", "com.au", "blogspot.com"])
def test_it_refuses_a_public_suffix(evil_api, name):
    response = evil_api.send("POST", "/domains", {"name": name})
    assert response.status_code == 422, response.content
    assert response.json()["code"] == "name_not_hostable"
    assert "public suffix" in response.json()["detail"]
    assert not Domain.objects.filter(name=name).exists()


@pytest.mark.django_db
def test_it_hosts_a_registrable_name_under_a_public_suffix(evil_api):
    response = evil_api.send("POST", "/domains", {"name": real_domain("shop", "co.uk")})
    assert response.status_code == 201, response.content
    assert response.json()["verified"] is False


@pytest.mark.django_db
def test_it_refuses_the_mail_hosts_own_name_its_parent_and_names_below_it(evil_api, settings):
    settings.MAILHOST_HOSTNAME = "mail.provider-mx.net"
    settings.MAILHOST_PORTAL_URL = "https://portal.provider-mx.net"
    for name in ["mail.provider-mx.net", "provider-mx.net", "bounces.mail.provider-mx.net",
                 "portal.provider-mx.net"]:
        response = evil_api.send("POST", "/domains", {"name": name})
        assert response.status_code == 422, (name, response.content)
        assert response.json()["code"] == "name_not_hostable"
    assert not Domain.objects.exists()


@pytest.mark.django_db
def test_it_lets_only_staff_host_the_mail_hosts_parent_and_nobody_the_host(evil, settings):
    settings.MAILHOST_HOSTNAME = "mail.provider-mx.net"
    staff = Client()
    staff.force_login(UserFactory(is_superuser=True, is_staff=True))
    made = staff.post("/mail-admin/evil/domains/add/", {"name": "provider-mx.net"})
    assert made.status_code == 302
    refused = staff.post("/mail-admin/evil/domains/add/", {"name": "mail.provider-mx.net"})
    assert refused.status_code == 422 and b"own name" in refused.content
    assert list(Domain.objects.values_list("name", flat=True)) == ["provider-mx.net"]


@pytest.mark.django_db
def test_it_refuses_a_subdomain_of_another_organisations_verified_domain(acme, evil_api):
    victim = verified_domain(acme, real_domain("acme"))
    response = evil_api.send("POST", "/domains", {"name": f"login.{victim.name}"})
    assert response.status_code == 409, response.content
    body = response.json()
    assert body["code"] == "inside_verified_domain"
    assert "Acme" not in body["detail"]
    assert not Domain.objects.filter(name=f"login.{victim.name}").exists()


@pytest.mark.django_db
def test_it_verifies_a_subdomain_of_the_organisations_own_verified_domain_at_once(acme):
    own = verified_domain(acme, real_domain("acme"))
    sub = services.domain_create(actor=SYSTEM, organisation=acme, name=f"eu.{own.name}")
    assert (sub.is_verified, sub.verification_method) == (True, "parent")


@pytest.mark.django_db
@pytest.mark.parametrize("lookalike", [
    "\u0430cme-bank.com",  # Cyrillic а + Latin: a mixed-script label
    "xn--cme-bank-06g.com",  # the same, typed as its A-label
    "\u0430\u0441\u0435.com",  # Cyrillic "асе": every letter passes for Latin ("ace.com")
])
def test_it_refuses_a_latin_cyrillic_homograph_of_a_domain(acme, evil_api, lookalike):
    verified_domain(acme, "acme-bank.com")
    response = evil_api.send("POST", "/domains", {"name": lookalike})
    assert response.status_code == 422, response.content
    assert response.json()["field"] == "name"
    assert "look" in response.json()["detail"] or "mixes" in response.json()["detail"]
    assert Domain.objects.count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize("name", ["пример.рф", "例え.jp", "bücher.de"])
def test_it_still_hosts_a_name_written_in_one_script(evil_api, name):
    response = evil_api.send("POST", "/domains", {"name": name})
    assert response.status_code == 201, response.content


# --- a claim on another tenant's name ---------------------------------------------------------


@pytest.mark.django_db
def test_it_answers_a_claim_on_another_tenants_domain_like_any_fresh_claim(acme, evil_api):
    victim = verified_domain(acme, real_domain("acme"))
    taken = evil_api.send("POST", "/domains", {"name": victim.name})
    fresh = evil_api.send("POST", "/domains", {"name": real_domain("nobody")})
    assert taken.status_code == fresh.status_code == 201
    assert claim_shape(taken.json()) == claim_shape(fresh.json())
    assert taken.json()["organisation"] == "evil" and taken.json()["verified"] is False
    assert "acme" not in taken.content.decode().replace(victim.name, "")
    # What B reads back about its claim is its own: never A's verification, nodes or state.
    read = evil_api.get(f"/domains/{victim.name}").json()
    assert (read["organisation"], read["verified"], read["live"]) == ("evil", False, False)
    assert Domain.objects.get(organisation=acme, name=victim.name).is_verified


@pytest.mark.django_db
def test_it_refuses_to_verify_a_claim_without_telling_who_holds_the_name(
    acme, evil_api, knot, settings
):
    victim = verified_domain(acme, real_domain("acme"))
    evil_api.send("POST", "/domains", {"name": victim.name})
    claim = Domain.objects.get(name=victim.name, verified_at__isnull=True)
    # A's DNS, as A runs it: B's token is not there.
    server = knot({victim.name: f'_mailhost-verify IN TXT "mailhost-verification={"a" * 32}"\n'})
    settings.MAILHOST_DNS_RESOLVERS = [server.address]
    refused = evil_api.send("POST", f"/domains/{victim.name}/verify")
    assert refused.status_code == 409 and refused.json()["code"] == "not_verified"
    assert "another organisation" not in refused.json()["detail"]
    assert "Acme" not in refused.json()["detail"]
    # Someone who really controls the DNS publishes B's token: they learn why, nothing more.
    server.set_zone(
        victim.name, f'_mailhost-verify IN TXT "mailhost-verification={claim.verification_token}"\n'
    )
    proven = evil_api.send("POST", f"/domains/{victim.name}/verify")
    assert proven.status_code == 409
    assert "already verified by another organisation" in proven.json()["detail"]
    assert "Acme" not in proven.json()["detail"]
    claim.refresh_from_db()
    assert not claim.is_verified


# --- nothing of an unverified claim reaches the mail node -------------------------------------


def node_rows(stack, sql: str, *args) -> list[tuple]:
    conn = sqlite3.connect(f"file:{stack.cfg.lookup_db}?mode=ro", uri=True)
    try:
        return list(conn.execute(sql, args))
    finally:
        conn.close()


def signing_table(stack) -> str:
    return (stack.cfg.state_dir / "opendkim" / "SigningTable").read_text()


def applied(revision: int) -> bool:
    return MailNode.objects.get().applied_revision >= revision


def relay_attempts(stack, recipient: str) -> list[str]:
    """Postfix's delivery log lines for `recipient` itself (not for where an alias sent it)."""
    log = stack.cfg.state_dir / "log" / "postfix.log"
    lines = log.read_text(errors="replace").splitlines() if log.exists() else []
    return [line for line in lines if f" to=<{recipient}>," in line and "orig_to=" not in line]


def rcpt_code(stack, address: str) -> int:
    with smtplib.SMTP(*stack.address("smtp"), timeout=5) as client:
        client.ehlo("sender.example")
        client.mail("someone@sender.example")
        return client.rcpt(address)[0]


def new_mailbox(domain, local_part: str) -> tuple[str, str]:
    password = generate_password()
    mailbox, _ = services.mailbox_create(
        actor=SYSTEM, domain=domain, local_part=local_part, password=password
    )
    return mailbox.address, password


@pytest.fixture
def third_party(reconcile_worker):
    """A local user of a third organisation, on a live domain: the one whose mail B wants."""
    domain = verified_domain(OrganisationFactory(), unique_domain("user"))
    address, password = new_mailbox(domain, "carol")
    wait_for(lambda: applied(domain.revision), timeout=10)
    return address, password


@pytest.fixture
def loot(evil, reconcile_worker):
    """B's own live mailbox, where its catch-alls would deliver what they capture."""
    domain = services.domain_create(actor=SYSTEM, organisation=evil, name=unique_domain("evil"))
    address, password = new_mailbox(domain, "loot")
    return address, password


@pytest.mark.stack
@pytest.mark.django_db(transaction=True)
def test_it_never_lets_a_claim_on_gmail_route_or_capture_outbound_mail(
    mail_stack, evil, evil_api, loot, third_party
):
    claim = evil_api.send("POST", "/domains", {"name": "gmail.com"})
    assert claim.status_code == 201
    catch_all = evil_api.send(
        "POST", "/aliases", {"address": "@gmail.com", "destinations": [loot[0]]}
    )
    assert catch_all.status_code == 201
    wait_for(lambda: applied(MailNode.objects.get().desired_revision), timeout=10)

    carol, carol_pw = third_party
    friend = f"friend{next(_counter)}@gmail.com"
    smtp_send(mail_stack, "submission", carol, friend, make_message(carol, friend, "to gmail"),
              login=(carol, carol_pw))
    # Either the catch-all captured it, or Postfix tried to relay it to Gmail (there is no
    # internet here: it is deferred or bounced, as it would be for any unreachable host).
    wait_for(
        lambda: fetch_inbox(mail_stack, *loot) or relay_attempts(mail_stack, friend),
        timeout=10,
    )
    assert fetch_inbox(mail_stack, *loot) == []
    assert all("lmtp" not in line for line in relay_attempts(mail_stack, friend))
    assert node_rows(mail_stack, "SELECT * FROM domains WHERE name='gmail.com'") == []
    assert node_rows(mail_stack, "SELECT * FROM aliases WHERE address LIKE '%@gmail.com'") == []
    assert "gmail.com" not in signing_table(mail_stack)
    assert (claim.json()["verified"], catch_all.json()["live"]) == (False, False)
    assert evil_api.send("POST", "/domains/gmail.com/verify").status_code in (409, 503)


@pytest.mark.stack
@pytest.mark.django_db(transaction=True)
def test_it_never_routes_a_claim_on_another_tenants_domain(
    mail_stack, acme, evil, evil_api, loot, third_party
):
    victim = verified_domain(acme, real_domain("acme"))
    alice, alice_pw = new_mailbox(victim, "alice")
    assert evil_api.send("POST", "/domains", {"name": victim.name}).status_code == 201
    stolen_pw = generate_password()
    assert evil_api.send("POST", "/mailboxes", {
        "address": f"alice@{victim.name}", "password": stolen_pw,
    }).status_code == 201
    assert evil_api.send("POST", "/aliases", {
        "address": f"@{victim.name}", "destinations": [loot[0]],
    }).status_code == 201
    wait_for(lambda: applied(MailNode.objects.get().desired_revision), timeout=10)

    carol, carol_pw = third_party
    for to in (alice, f"ceo@{victim.name}"):
        try:
            smtp_send(mail_stack, "submission", carol, to, make_message(carol, to, f"to {to}"),
                      login=(carol, carol_pw))
        except smtplib.SMTPRecipientsRefused:
            assert to != alice  # A has no catch-all: an unknown address of A's is refused
    wait_for(lambda: fetch_inbox(mail_stack, alice, alice_pw), timeout=10)
    assert [m["Subject"] for m in fetch_inbox(mail_stack, alice, alice_pw)] == [f"to {alice}"]
    assert fetch_inbox(mail_stack, *loot) == []
    assert imap_login(mail_stack, alice, alice_pw)
    assert not imap_login(mail_stack, alice, stolen_pw)
    (row,) = node_rows(mail_stack, "SELECT src FROM domains WHERE name=?", victim.name)
    assert row == (f"domain:{victim.pk}",)


def send_internal_and_fetch(stack, sender: str, to: tuple[str, str], subject: str) -> bytes:
    """What a receiver gets when the portal (or anything local) sends as `sender`."""
    smtp_send(stack, "internal", sender, to[0], make_message(sender, to[0], subject))
    messages = wait_for(
        lambda: [m for m in fetch_inbox_raw(stack, *to) if subject.encode() in m], timeout=10
    )
    return messages[-1]


@pytest.mark.stack
@pytest.mark.dns
@pytest.mark.django_db(transaction=True)
def test_it_keeps_an_unverified_domain_off_the_node_until_its_dns_record_is_seen(
    mail_stack, evil, evil_api, knot, settings, third_party
):
    name = real_domain("newco", "net")
    created = evil_api.send("POST", "/domains", {"name": name})
    assert created.status_code == 201
    bob, bob_pw = new_mailbox(Domain.objects.get(name=name), "bob")
    wait_for(lambda: applied(MailNode.objects.get().desired_revision), timeout=10)

    assert node_rows(mail_stack, "SELECT * FROM domains WHERE name=?", name) == []
    assert node_rows(mail_stack, "SELECT * FROM mailboxes WHERE address=?", bob) == []
    assert name not in signing_table(mail_stack)
    assert rcpt_code(mail_stack, bob) >= 500
    assert not imap_login(mail_stack, bob, bob_pw)
    unsigned = send_internal_and_fetch(mail_stack, f"noreply@{name}", third_party, "before")
    assert f"d={name}".encode() not in unsigned
    record = created.json()["verification"]
    assert record["name"] == f"_mailhost-verify.{name}" and record["type"] == "TXT"

    # The owner publishes what the portal says (the zone fragment holds the TXT token) in a
    # real DNS server, and presses "Verify now".
    domain = Domain.objects.get(name=name)
    zone = fragment_for(domain)
    line = rf'_mailhost-verify\.{re.escape(name)}\.\s+300\s+IN\s+TXT\s+"{record["value"]}"'
    assert re.search(line, zone), zone
    server = knot({name: zone})
    settings.MAILHOST_DNS_RESOLVERS = [server.address]
    verified = evil_api.send("POST", f"/domains/{name}/verify")
    assert verified.status_code == 200, verified.content
    assert verified.json()["verified"] is True
    domain.refresh_from_db()
    assert domain.verification_method == "dns"

    wait_for(lambda: applied(domain.revision), timeout=10)
    assert node_rows(mail_stack, "SELECT name FROM domains WHERE name=?", name) == [(name,)]
    wait_for(lambda: imap_login(mail_stack, bob, bob_pw), timeout=10)
    # Postfix's address resolver caches the refusal it gave before for a moment.
    wait_for(lambda: rcpt_code(mail_stack, bob) == 250, timeout=10)
    subject = "after verification"
    smtp_send(mail_stack, "submission", bob, third_party[0],
              make_message(bob, third_party[0], subject), login=(bob, bob_pw))
    (signed,) = wait_for(
        lambda: [m for m in fetch_inbox_raw(mail_stack, *third_party) if subject.encode() in m],
        timeout=10,
    )
    assert f"d={name}".encode() in signed
    lookup = lookup_at(server.address)

    def txt(qname: bytes, timeout: int = 5) -> bytes | None:
        values = lookup.texts(qname.decode().rstrip("."), "TXT")
        return values[0].encode() if values else None

    assert dkim.verify(signed, dnsfunc=txt)
    event = AuditEvent.objects.get(action="domain.verify", target=name)
    assert event.after["verification_method"] == "dns"


@pytest.mark.stack
@pytest.mark.django_db(transaction=True)
def test_it_puts_a_domain_live_when_staff_mark_it_verified_and_audits_who(
    mail_stack, evil, reconcile_worker
):
    name = real_domain("staffco", "org")
    admin = MembershipFactory(organisation=evil, role="owner").user
    owner_client = Client()
    owner_client.force_login(admin)
    assert owner_client.post("/mail-admin/evil/domains/add/", {"name": name}).status_code == 302
    domain = Domain.objects.get(name=name)
    dave, dave_pw = new_mailbox(domain, "dave")
    page = owner_client.get(f"/mail-admin/evil/domains/{name}/").content.decode()
    assert "publish this, then Verify now" in page and f"_mailhost-verify.{name}." in page
    assert "go live once the domain is verified" in page
    assert "Mark verified (staff)" not in page
    # The organisation itself cannot skip the proof.
    refused = owner_client.post(f"/mail-admin/evil/domains/{name}/verify/staff/")
    assert refused.status_code == 403
    domain.refresh_from_db()
    assert not domain.is_verified

    staff_user = UserFactory(is_superuser=True, is_staff=True)
    staff = Client()
    staff.force_login(staff_user)
    assert staff.post(f"/mail-admin/evil/domains/{name}/verify/staff/").status_code == 302
    domain.refresh_from_db()
    assert (domain.is_verified, domain.verification_method) == (True, "staff")
    event = AuditEvent.objects.get(action="domain.verify", target=name)
    assert event.actor_user == staff_user and event.organisation_id == evil.pk
    wait_for(lambda: applied(domain.revision), timeout=10)
    wait_for(lambda: imap_login(mail_stack, dave, dave_pw), timeout=10)
    assert name in signing_table(mail_stack)


@pytest.mark.django_db
def test_it_lets_staff_mark_and_revoke_ownership_in_django_admin_audited(evil):
    claim = services.domain_create(actor=SYSTEM, organisation=evil, name=real_domain("adm"))
    staff_user = UserFactory(is_superuser=True, is_staff=True)
    staff = Client()
    staff.force_login(staff_user)
    changelist = "/admin/mailboxes/domain/"
    for action in ("mark_verified", "revoke_verification"):
        response = staff.post(changelist, {"action": action, "_selected_action": [claim.pk]})
        assert response.status_code == 302
    actions = list(
        AuditEvent.objects.filter(target=claim.name).order_by("id").values_list(
            "action", "actor_user"
        )
    )
    assert actions[-2:] == [("domain.verify", staff_user.pk), ("domain.unverify", staff_user.pk)]
    old_token = claim.verification_token
    claim.refresh_from_db()
    assert not claim.is_verified and claim.verification_token != old_token


@pytest.mark.django_db
def test_it_serves_nothing_public_for_a_mere_claim(acme, evil, evil_api):
    name = real_domain("quiet")
    evil_api.send("POST", "/domains", {"name": name})
    client = Client()
    autoconfig = client.get("/mail/config-v1.1.xml", HTTP_HOST=f"autoconfig.{name}")
    policy = client.get("/.well-known/mta-sts.txt", HTTP_HOST=f"mta-sts.{name}")
    assert autoconfig.status_code != 200 and policy.status_code != 200
    password = generate_password()
    evil_api.send("POST", "/mailboxes", {"address": f"eve@{name}", "password": password})
    login = client.post("/mailbox/login/", {"address": f"eve@{name}", "password": password})
    assert login.status_code == 401
