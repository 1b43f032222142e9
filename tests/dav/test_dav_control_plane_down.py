"""Calendars and contacts keep working with the portal, worker, database and Redis stopped.

As in tests/reconcile/test_control_plane_down.py: the operator commands provision a mailbox and
reconcile it onto a real stack of this test's own, then PostgreSQL and Redis are shut down and
nothing of the control plane runs; Radicale asks Dovecot, which reads the node's lookup store.
"""

import uuid

import pytest

from tests.control_plane import control_plane, throwaway_services  # noqa: F401 (fixtures)
from tests.dav.support import dav, dav_client, event, make_address_book, vcard

pytestmark = pytest.mark.stack


def test_it_serves_calendars_and_contacts_with_the_control_plane_down(control_plane):  # noqa: F811
    plane = control_plane(hostname="mail.dav.test")
    stack = plane.stack
    plane.manage("migrate", "-v0")
    plane.manage("createorg", "acme", "--name", "Acme")
    plane.manage("adddomain", "acme.test", "--org", "acme")
    alice = "alice@acme.test"
    password = plane.add_mailbox(alice)
    plane.manage("stack", "start")
    plane.manage("reconcile")
    before = str(uuid.uuid4())
    calendar = dav_client(stack, alice, password).principal().make_calendar(name="Work")
    calendar.save_event(event(before, "Planned before"))

    plane.stop()

    after = str(uuid.uuid4())
    [work] = dav_client(stack, alice, password).principal().calendars()
    work.save_event(event(after, "Planned after"))
    again = dav_client(stack, alice, password).principal().calendars()[0]
    assert sorted(e.icalendar_component["SUMMARY"] for e in again.events()) == [
        "Planned after", "Planned before"]
    book = make_address_book(stack, alice, password)
    assert dav(stack, "PUT", f"{book}bob.vcf", user=alice, password=password,
               body=vcard("Bob Builder", "bob@outside.example"),
               headers={"Content-Type": "text/vcard"}).status == 201
    assert b"Bob Builder" in dav(stack, "GET", f"{book}bob.vcf", user=alice,
                                 password=password).body
    assert dav(stack, "PROPFIND", f"/dav/{alice}/", user=alice, password="wrong",
               headers={"Depth": "0"}).status == 401
