"""Talking CalDAV/CardDAV to a stack's edge: the `caldav` client library, and plain HTTP for
what it does not do (address books, a chosen source address, raw status codes)."""

import base64
import http.client
import ssl
import uuid
from dataclasses import dataclass

import caldav
import vobject

from mailhost.backend.stack import Stack


def _context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the stack's self-signed certificate, on loopback
    return context


def dav_base(stack: Stack) -> str:
    host, port = stack.address("https")
    return f"https://{host}:{port}/dav/"


def dav_client(stack: Stack, user: str, password: str) -> caldav.DAVClient:
    return caldav.DAVClient(url=dav_base(stack), username=user, password=password,
                            ssl_verify_cert=False, enable_rfc6764=False)


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


def dav(stack: Stack, method: str, path: str, *, user: str = "", password: str = "",
        body: bytes | str = b"", headers: dict | None = None, source: str = "127.0.0.1") -> Answer:
    """One request to the edge from `source` (another loopback address plays an attacker)."""
    host, port = stack.address("https")
    conn = http.client.HTTPSConnection(host, port, context=_context(), timeout=30,
                                       source_address=(source, 0))
    sent = {"Host": stack.cfg.hostname, **(headers or {})}
    if user:
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        sent["Authorization"] = f"Basic {token}"
    try:
        conn.request(method, path, body=body.encode() if isinstance(body, str) else body,
                     headers=sent)
        response = conn.getresponse()
        return Answer(response.status, {k.lower(): v for k, v in response.getheaders()},
                      response.read())
    finally:
        conn.close()


MKCOL_ADDRESSBOOK = """<?xml version="1.0" encoding="utf-8"?>
<D:mkcol xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:carddav">
  <D:set><D:prop>
    <D:resourcetype><D:collection/><C:addressbook/></D:resourcetype>
    <D:displayname>Contacts</D:displayname>
  </D:prop></D:set>
</D:mkcol>
"""


def make_address_book(stack: Stack, user: str, password: str, name: str = "contacts") -> str:
    path = f"/dav/{user}/{name}/"
    answer = dav(stack, "MKCOL", path, user=user, password=password, body=MKCOL_ADDRESSBOOK,
                 headers={"Content-Type": "application/xml"})
    assert answer.status == 201, answer
    return path


def vcard(full_name: str, email: str) -> str:
    card = vobject.vCard()
    card.add("uid").value = str(uuid.uuid4())
    card.add("fn").value = full_name
    given, _, family = full_name.partition(" ")
    card.add("n").value = vobject.vcard.Name(family=family, given=given)
    card.add("email").value = email
    return card.serialize()


def event(uid: str, summary: str) -> str:
    return "\r\n".join([
        "BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//Mailhost tests//EN",
        "BEGIN:VEVENT", f"UID:{uid}", "DTSTAMP:20261201T120000Z",
        "DTSTART:20261224T180000Z", "DTEND:20261224T200000Z", f"SUMMARY:{summary}",
        "END:VEVENT", "END:VCALENDAR", "",
    ])
