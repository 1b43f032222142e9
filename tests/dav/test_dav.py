"""Calendars and contacts (Radicale behind the edge at /dav/), against the real stack.

A mailbox made through the services, applied by a real worker, then a real CalDAV client
(`caldav`) and plain HTTP for address books, through the edge (nginx) on its HTTPS port.
"""

import os
import uuid

import pytest
import vobject

from mailboxes import services
from mailboxes.models import Mailbox
from mailhost.passwords import generate_password
from tenants.access import SYSTEM
from tests.dav.support import dav, dav_client, event, make_address_book, vcard
from tests.factories import OrganisationFactory
from tests.stack import applied, unique_domain, wait_for

pytestmark = [pytest.mark.stack, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def domain(reconcile_worker):
    org = OrganisationFactory()
    return services.domain_create(actor=SYSTEM, organisation=org, name=unique_domain("dav"))


def live_mailbox(domain, local_part: str) -> tuple[str, str]:
    password = generate_password()
    mailbox, _ = services.mailbox_create(actor=SYSTEM, domain=domain, local_part=local_part,
                                         password=password)
    wait_for(lambda: applied(mailbox), timeout=30)
    return mailbox.address, password


def propfind(stack, path, user, password, depth="0", source="127.0.0.1"):
    return dav(stack, "PROPFIND", path, user=user, password=password, source=source,
               headers={"Depth": depth, "Content-Type": "application/xml"})


def test_it_keeps_a_mailboxs_calendar_and_address_book(domain, mail_stack):
    address, password = live_mailbox(domain, "alice")
    client = dav_client(mail_stack, address, password)
    calendar = client.principal().make_calendar(name="Work")
    uid = str(uuid.uuid4())
    calendar.save_event(event(uid, "Release party"))
    book = make_address_book(mail_stack, address, password)
    card = vcard("Carol Danvers", "carol@friends.example")
    put = dav(mail_stack, "PUT", f"{book}carol.vcf", user=address, password=password, body=card,
              headers={"Content-Type": "text/vcard"})
    assert put.status == 201

    again = dav_client(mail_stack, address, password).principal()
    [found] = [c for c in again.calendars() if c.get_display_name() == "Work"]
    assert found.event_by_uid(uid).icalendar_component["SUMMARY"] == "Release party"
    got = dav(mail_stack, "GET", f"{book}carol.vcf", user=address, password=password)
    assert got.status == 200
    parsed = vobject.readOne(got.body.decode())
    assert (parsed.fn.value, parsed.email.value) == ("Carol Danvers", "carol@friends.example")
    # Stored in the mailbox's own home, beside its mail.
    home = Mailbox.objects.get(local_part="alice", domain=domain).home_id
    assert list((mail_stack.cfg.path(f"mail/{home}/dav/{book.split('/')[3]}")).glob("*.vcf"))


def test_it_refuses_a_wrong_password_and_no_password_with_401(domain, mail_stack):
    address, password = live_mailbox(domain, "alice")
    assert propfind(mail_stack, f"/dav/{address}/", address, password + "x").status == 401
    assert propfind(mail_stack, f"/dav/{address}/", "", "").status == 401
    assert propfind(mail_stack, f"/dav/{address}/", address, password).status == 207


def test_another_mailbox_cannot_read_list_or_write_a_users_collections(domain, mail_stack):
    alice, alice_pw = live_mailbox(domain, "alice")
    mallory, mallory_pw = live_mailbox(domain, "mallory")
    calendar = dav_client(mail_stack, alice, alice_pw).principal().make_calendar(name="Private")
    uid = str(uuid.uuid4())
    calendar.save_event(event(uid, "Secret meeting"))
    path = calendar.url.path

    # Mallory, with her own valid password, goes for Alice's calendar and principal.
    assert dav(mail_stack, "GET", f"{path}{uid}.ics", user=mallory, password=mallory_pw
               ).status == 403
    assert propfind(mail_stack, path, mallory, mallory_pw, depth="1").status == 403
    assert propfind(mail_stack, f"/dav/{alice}/", mallory, mallory_pw, depth="1").status == 403
    planted = dav(mail_stack, "PUT", f"{path}planted.ics", user=mallory, password=mallory_pw,
                  body=event(str(uuid.uuid4()), "Planted"),
                  headers={"Content-Type": "text/calendar"})
    assert planted.status == 403
    assert dav(mail_stack, "DELETE", path, user=mallory, password=mallory_pw).status == 403
    # Listing the root shows her no one else.
    root = propfind(mail_stack, "/dav/", mallory, mallory_pw, depth="1")
    assert root.status == 207 and alice.encode() not in root.body

    # Alice's calendar is as she left it.
    [kept] = dav_client(mail_stack, alice, alice_pw).principal().calendars()
    assert [e.icalendar_component["SUMMARY"] for e in kept.events()] == ["Secret meeting"]


def test_it_accepts_an_app_password_and_refuses_it_once_revoked(domain, mail_stack):
    address, _ = live_mailbox(domain, "alice")
    mailbox = Mailbox.objects.get(local_part="alice", domain=domain)
    app, secret = services.app_password_create(actor=SYSTEM, mailbox=mailbox, name="phone")
    wait_for(lambda: applied(mailbox), timeout=30)
    assert propfind(mail_stack, f"/dav/{address}/", address, secret).status == 207

    services.app_password_revoke(actor=SYSTEM, app_password=app)
    wait_for(lambda: applied(mailbox), timeout=30)
    assert propfind(mail_stack, f"/dav/{address}/", address, secret).status == 401


def test_it_refuses_a_suspended_mailbox(domain, mail_stack):
    address, password = live_mailbox(domain, "alice")
    assert propfind(mail_stack, f"/dav/{address}/", address, password).status == 207
    mailbox = Mailbox.objects.get(local_part="alice", domain=domain)

    services.mailbox_set_status(actor=SYSTEM, mailbox=mailbox, status="suspended")
    wait_for(lambda: applied(mailbox), timeout=30)

    assert propfind(mail_stack, f"/dav/{address}/", address, password).status == 401


def test_deleting_a_mailbox_archives_its_collections_and_restoring_brings_them_back(
    domain, mail_stack
):
    address, password = live_mailbox(domain, "alice")
    calendar = dav_client(mail_stack, address, password).principal().make_calendar(name="Home")
    uid = str(uuid.uuid4())
    calendar.save_event(event(uid, "Dentist"))
    mailbox = Mailbox.objects.get(local_part="alice", domain=domain)
    home = mailbox.home_id

    services.mailbox_delete(actor=SYSTEM, mailbox=mailbox)
    wait_for(lambda: applied(mailbox), timeout=30)
    assert propfind(mail_stack, f"/dav/{address}/", address, password).status == 401
    assert list(mail_stack.cfg.path(f"archive/{home}/dav").iterdir())
    assert not os.path.lexists(mail_stack.cfg.path(f"dav/collections/collection-root/{address}"))

    services.mailbox_restore(actor=SYSTEM, mailbox=Mailbox.objects.get(pk=mailbox.pk))
    wait_for(lambda: applied(mailbox), timeout=30)
    [back] = dav_client(mail_stack, address, password).principal().calendars()
    assert back.event_by_uid(uid).icalendar_component["SUMMARY"] == "Dentist"


def test_a_renamed_mailbox_keeps_its_collections_and_the_old_name_has_none(domain, mail_stack):
    address, password = live_mailbox(domain, "alice")
    dav_client(mail_stack, address, password).principal().make_calendar(name="Kept")
    mailbox = Mailbox.objects.get(local_part="alice", domain=domain)

    services.mailbox_rename(actor=SYSTEM, mailbox=mailbox, local_part="alicia")
    wait_for(lambda: applied(mailbox), timeout=30)

    renamed = f"alicia@{domain.name}"
    calendars = dav_client(mail_stack, renamed, password).principal().calendars()
    assert [c.get_display_name() for c in calendars] == ["Kept"]
    assert propfind(mail_stack, f"/dav/{address}/", address, password).status == 401


def test_the_edge_redirects_the_well_known_uris_and_a_bare_dav(mail_stack):
    _, port = mail_stack.address("https")
    for path in ("/.well-known/caldav", "/.well-known/carddav", "/dav"):
        answer = dav(mail_stack, "GET", path)
        assert answer.status == 301, path
        assert answer.headers["location"] == f"https://{mail_stack.cfg.hostname}:{port}/dav/"

