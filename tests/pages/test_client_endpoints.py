"""One truth for where mail clients connect: the SRV records, Thunderbird autoconfig, Outlook
autodiscover, the Apple profile and /mailbox/setup/ all give the same host and ports, and on a
development install (`make up`) those are ports that answer.

Before: SRV said 993/465/443 while the stack listened on 2993/2465 and the portal on 8000, and
autoconfig said 2993: a client that followed the SRV records found nothing listening.
"""

import http.client
import json
import plistlib
import re
import socket
import ssl
from dataclasses import dataclass

import defusedxml.ElementTree as ET
import pytest
from django.test import Client

from mailboxes.services import domain_create, mailbox_create
from tenants.access import SYSTEM
from tests.api.conftest import make_token
from tests.factories import TEST_PASSWORD, OrganisationFactory
from tests.portal import running_portal

pytestmark = pytest.mark.usefixtures("clean_rate_limits")

AUTODISCOVER_NS = "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"
AUTODISCOVER_REQUEST = (
    '<?xml version="1.0" encoding="utf-8"?><Autodiscover xmlns="http://schemas.microsoft.com/'
    'exchange/autodiscover/outlook/requestschema/2006"><Request><EMailAddress>{address}'
    "</EMailAddress></Request></Autodiscover>"
)


@dataclass(frozen=True)
class Endpoints:
    host: str
    imaps: int
    imap: int
    submissions: int
    submission: int
    https: int
    dav: int  # the edge's HTTPS port: CalDAV/CardDAV at /dav/


def thunderbird_says(xml: bytes) -> dict:
    root = ET.fromstring(xml)
    said = {}
    for tag in ("incomingServer", "outgoingServer"):
        for server in root.findall(f"emailProvider/{tag}"):
            kind = "imap" if tag == "incomingServer" else "smtp"
            said[(kind, server.findtext("socketType"))] = (
                server.findtext("hostname"), int(server.findtext("port"))
            )
    return said


def autodiscover_says(xml: bytes) -> dict:
    ns = {"r": AUTODISCOVER_NS}
    return {
        p.findtext("r:Type", namespaces=ns): (
            p.findtext("r:Server", namespaces=ns), int(p.findtext("r:Port", namespaces=ns))
        )
        for p in ET.fromstring(xml).findall(".//r:Protocol", ns)
    }


def srv_says(records: list[dict]) -> dict:
    said = {}
    for record in records:
        if record["type"] == "SRV":
            _priority, _weight, port, target = record["value"].split()
            said[record["key"]] = (target.rstrip("."), int(port))
    return said


def everything_clients_are_told(client: Client, token: str, address: str) -> dict:
    """What each surface tells a client, as {(surface, what): (host, port)}."""
    domain = address.split("@")[1]
    told = {}
    dns = client.get(f"/api/v1/domains/{domain}/dns", headers={"Authorization": f"Bearer {token}"})
    assert dns.status_code == 200, dns.content
    for key, value in srv_says(dns.json()["records"]).items():
        told[("srv", key)] = value
    thunderbird = client.get(f"/mail/config-v1.1.xml?emailaddress={address}")
    for key, value in thunderbird_says(thunderbird.content).items():
        told[("thunderbird", key)] = value
    outlook = client.post("/autodiscover/autodiscover.xml",
                          AUTODISCOVER_REQUEST.format(address=address), content_type="text/xml")
    for key, value in autodiscover_says(outlook.content).items():
        told[("autodiscover", key)] = value
    assert client.post(
        "/mailbox/login/", {"address": address, "password": TEST_PASSWORD}
    ).status_code == 302
    profile = plistlib.loads(client.get("/mailbox/setup/apple.mobileconfig").content)
    account = profile["PayloadContent"][0]
    told[("apple", "imap")] = (account["IncomingMailServerHostName"],
                               account["IncomingMailServerPortNumber"])
    told[("apple", "smtp")] = (account["OutgoingMailServerHostName"],
                               account["OutgoingMailServerPortNumber"])
    for payload in profile["PayloadContent"][1:]:
        kind = "CalDAV" if payload["PayloadType"] == "com.apple.caldav.account" else "CardDAV"
        told[("apple", kind)] = (payload[f"{kind}HostName"], payload[f"{kind}Port"])
    page = client.get("/mailbox/setup/").content.decode()
    host = re.search(r'Server</th><td data-label="IMAP"><code>([^<]+)</code>', page)[1]
    imap, smtp = re.search(
        r'Port</th><td data-label="IMAP"><code>(\d+)</code></td>'
        r'<td data-label="SMTP"><code>(\d+)</code>', page
    ).groups()
    told[("setup", "imap")], told[("setup", "smtp")] = (host, int(imap)), (host, int(smtp))
    dav = re.search(r'<code id="dav-url">https://([^:/<]+):?(\d*)/dav/', page)
    dav_host, dav_port = dav.groups()
    told[("setup", "dav")] = (dav_host, int(dav_port or 443))
    return told


def assert_one_truth(told: dict, endpoints: Endpoints) -> None:
    host = endpoints.host
    expected = {
        ("srv", "srv:imaps"): (host, endpoints.imaps),
        ("srv", "srv:submissions"): (host, endpoints.submissions),
        ("srv", "srv:autodiscover"): (host, endpoints.https),
        ("srv", "srv:caldavs"): (host, endpoints.dav),
        ("srv", "srv:carddavs"): (host, endpoints.dav),
        ("apple", "CalDAV"): (host, endpoints.dav),
        ("apple", "CardDAV"): (host, endpoints.dav),
        ("setup", "dav"): (host, endpoints.dav),
        ("thunderbird", ("imap", "SSL")): (host, endpoints.imaps),
        ("thunderbird", ("imap", "STARTTLS")): (host, endpoints.imap),
        ("thunderbird", ("smtp", "SSL")): (host, endpoints.submissions),
        ("thunderbird", ("smtp", "STARTTLS")): (host, endpoints.submission),
        ("autodiscover", "IMAP"): (host, endpoints.imaps),
        ("autodiscover", "SMTP"): (host, endpoints.submissions),
        ("apple", "imap"): (host, endpoints.imaps),
        ("apple", "smtp"): (host, endpoints.submissions),
        ("setup", "imap"): (host, endpoints.imaps),
        ("setup", "smtp"): (host, endpoints.submissions),
    }
    assert told == expected


@pytest.fixture
def hosted(db):
    organisation = OrganisationFactory(slug="acme", name="Acme")
    domain = domain_create(actor=SYSTEM, organisation=organisation, name="ports.test")
    mailbox_create(actor=SYSTEM, domain=domain, local_part="anna", password=TEST_PASSWORD)
    return make_token(organisation)


def test_it_tells_every_client_surface_the_ports_the_dev_node_listens_on(client, hosted, settings):
    told = everything_clients_are_told(client, hosted, "anna@ports.test")

    ports = settings.MAILHOST_PORTS  # the development stack's: 2993, 2143, 2465, 2587
    assert_one_truth(told, Endpoints(
        host="mail.localhost", imaps=ports["imaps"], imap=ports["imap"],
        submissions=ports["submissions"], submission=ports["submission"],
        https=8000,  # the portal `make up` serves, on a .localhost mail host
        dav=ports["https"],  # the edge: /dav/ is not on the portal's plain port
    ))


def test_it_tells_every_client_surface_the_public_ports_of_a_port_mapped_node(
    client, hosted, settings
):
    # The node listens on high ports; the firewall maps the standard ones onto them.
    settings.MAILHOST_HOSTNAME = "mail.provider.test"
    settings.MAILHOST_PORTAL_URL = "https://portal.provider.test"
    settings.MAILHOST_PUBLIC_PORTS = {"imaps": 993, "imap": 143, "submissions": 465,
                                      "submission": 587, "https": 0}

    told = everything_clients_are_told(client, hosted, "anna@ports.test")

    assert_one_truth(told, Endpoints(
        host="mail.provider.test", imaps=993, imap=143, submissions=465, submission=587, https=443,
        dav=443,
    ))


# --- a development install, as `make up` runs it: what it advertises answers -----------------


def greeting(port: int, *, tls: bool) -> bytes:
    """The first line a server sends on 127.0.0.1:port (after a TLS handshake if `tls`)."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE  # self-signed, loopback
    sock = context.wrap_socket(raw) if tls else raw
    with sock:
        return sock.makefile("rb").readline()


@pytest.mark.stack
@pytest.mark.django_db(transaction=True)
def test_it_advertises_ports_that_answer_on_a_dev_install(mail_stack, settings):
    organisation = OrganisationFactory(slug="devbox", name="Dev box")
    domain_create(actor=SYSTEM, organisation=organisation, name="devbox.test")
    token = make_token(organisation)
    node_ports = {f"MAILHOST_{name.upper()}_PORT": str(port)
                  for name, port in mail_stack.cfg.ports.items()}
    node_ports["MAILHOST_INTERNAL_SMTP_PORT"] = node_ports.pop("MAILHOST_INTERNAL_PORT")

    # The portal as `make up` runs it, with nothing but the node's own ports configured.
    with running_portal(**node_ports) as portal:
        port = int(portal.url.rsplit(":", 1)[1])
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        connection.request("GET", "/api/v1/domains/devbox.test/dns",
                           headers={"Authorization": f"Bearer {token}"})
        srv = srv_says(json.loads(connection.getresponse().read())["records"])
        connection.request("GET", "/mail/config-v1.1.xml",
                           headers={"Host": "autoconfig.devbox.test"})
        thunderbird = thunderbird_says(connection.getresponse().read())

        assert srv["srv:imaps"][1] == thunderbird[("imap", "SSL")][1]
        assert srv["srv:submissions"][1] == thunderbird[("smtp", "SSL")][1]
        # Every advertised mail port answers as the protocol it is advertised for.
        assert greeting(srv["srv:imaps"][1], tls=True).startswith(b"* OK")
        assert greeting(thunderbird[("imap", "STARTTLS")][1], tls=False).startswith(b"* OK")
        assert greeting(srv["srv:submissions"][1], tls=True).startswith(b"220 ")
        assert greeting(thunderbird[("smtp", "STARTTLS")][1], tls=False).startswith(b"220 ")
        # Outlook, following _autodiscover._tcp, asks the SRV target at the SRV port: that is
        # this portal, and it answers for the mail host's name.
        target, https_port = srv["srv:autodiscover"]
        assert https_port == port
        connection.request(
            "POST", "/autodiscover/autodiscover.xml",
            body=AUTODISCOVER_REQUEST.format(address="anna@devbox.test"),
            headers={"Host": f"{target}:{https_port}", "Content-Type": "text/xml"},
        )
        reply = connection.getresponse()
        assert reply.status == 200
        assert autodiscover_says(reply.read())["IMAP"][1] == srv["srv:imaps"][1]
        # A calendar app, following _caldavs._tcp, asks the SRV target's port for the
        # well-known URI (RFC 6764): that is the edge, which sends it on to /dav/.
        target, dav_port = srv["srv:caldavs"]
        assert srv["srv:carddavs"] == (target, dav_port)
        edge = http.client.HTTPSConnection("127.0.0.1", dav_port, timeout=10,
                                           context=ssl._create_unverified_context())
        edge.request("GET", "/.well-known/caldav", headers={"Host": f"{target}:{dav_port}"})
        redirect = edge.getresponse()
        assert redirect.status == 301
        assert redirect.getheader("Location") == f"https://{target}:{dav_port}/dav/"
