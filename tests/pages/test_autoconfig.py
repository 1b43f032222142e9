"""Mail client self-configuration: Thunderbird, Outlook, the hosts they ask at."""

import defusedxml.ElementTree as ET

from tests.factories import DomainFactory

AUTODISCOVER_REQUEST = """<?xml version="1.0" encoding="utf-8"?>
<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006">
  <Request><EMailAddress>Anna@ACME.test</EMailAddress>
  <AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a</AcceptableResponseSchema>
  </Request></Autodiscover>"""


def test_it_serves_thunderbird_autoconfig_for_a_hosted_domain(client, domain, settings):
    response = client.get("/.well-known/autoconfig/mail/config-v1.1.xml?emailaddress=a@acme.test")
    assert response.status_code == 200 and response["Content-Type"] == "application/xml"
    root = ET.fromstring(response.content)
    incoming = root.find("emailProvider/incomingServer")
    assert incoming.get("type") == "imap"
    assert incoming.findtext("port") == str(settings.MAILHOST_PORTS["imaps"])
    assert incoming.findtext("socketType") == "SSL"
    assert incoming.findtext("username") == "%EMAILADDRESS%"
    outgoing = root.find("emailProvider/outgoingServer")
    assert outgoing.findtext("port") == str(settings.MAILHOST_PORTS["submissions"])


def test_it_answers_on_the_autoconfig_host_of_a_hosted_domain(client, domain):
    response = client.get("/mail/config-v1.1.xml", HTTP_HOST="autoconfig.acme.test")
    assert response.status_code == 200
    assert ET.fromstring(response.content).findtext("emailProvider/domain") == "acme.test"


def test_it_is_404_for_a_domain_not_hosted_here(client, db):
    response = client.get("/mail/config-v1.1.xml?emailaddress=a@elsewhere.test")
    assert response.status_code == 404
    # An unknown autoconfig host falls through to Django, which refuses the host name.
    response = client.get("/mail/config-v1.1.xml", HTTP_HOST="autoconfig.elsewhere.test")
    assert response.status_code == 400


def test_it_is_404_for_a_disabled_domain(client, org):
    DomainFactory(organisation=org, name="off.test", status="disabled")
    assert client.get("/mail/config-v1.1.xml?emailaddress=a@off.test").status_code == 404


def test_it_answers_outlook_autodiscover(client, domain, settings):
    response = client.post(
        "/autodiscover/autodiscover.xml",
        AUTODISCOVER_REQUEST,
        content_type="text/xml",
        HTTP_HOST="autodiscover.acme.test",
    )
    assert response.status_code == 200
    ns = {"r": "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"}
    protocols = ET.fromstring(response.content).findall(".//r:Protocol", ns)
    kinds = {p.findtext("r:Type", namespaces=ns): p for p in protocols}
    assert set(kinds) == {"IMAP", "SMTP"}
    assert kinds["IMAP"].findtext("r:LoginName", namespaces=ns) == "anna@acme.test"
    assert kinds["SMTP"].findtext("r:Port", namespaces=ns) == str(
        settings.MAILHOST_PORTS["submissions"]
    )


def test_it_refuses_a_bad_autodiscover_request(client, domain):
    assert (
        client.post("/autodiscover/autodiscover.xml", "<x", content_type="text/xml").status_code
        == 400
    )
    bomb = '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><x>&a;</x>'
    assert (
        client.post("/autodiscover/autodiscover.xml", bomb, content_type="text/xml").status_code
        == 400
    )
    other = AUTODISCOVER_REQUEST.replace("ACME.test", "elsewhere.test")
    assert (
        client.post("/autodiscover/autodiscover.xml", other, content_type="text/xml").status_code
        == 404
    )
    assert client.get("/autodiscover/autodiscover.xml").status_code == 405
