"""BIMI logo validator bypasses (issue 10, finding 9), played as the attacker.

The logo is served from the portal's own origin and shown by mail clients next to authenticated
mail. Each payload below got past a deny-list validator and was served byte for byte. With an
allow-list (the SVG Tiny PS elements and attributes) each is refused saying what is not allowed,
and what is served is re-serialised from the parsed, allowed tree, never the uploaded bytes.
"""

from pathlib import Path
from xml.etree import ElementTree

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from identity.models import DomainPosture
from tenants.models import AuditEvent
from tests.factories import MembershipFactory
from tests.identity.conftest import domain, mail_settings, organisation  # noqa: F401
from tests.identity.support import api_for

pytestmark = pytest.mark.django_db

GOOD = (Path(__file__).parent.parent / "identity" / "svg" / "good.svg").read_bytes()
HEAD = (
    b'<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" '
    b'version="1.2" baseProfile="tiny-ps" viewBox="0 0 100 100"><title>Acme</title>'
)


def logo(body: bytes, *, prolog: bytes = b"") -> bytes:
    return prolog + HEAD + body + b"</svg>"


BYPASSES = {
    "stylesheet_pi": (
        logo(b'<rect width="100" height="100"/>',
             prolog=b'<?xml-stylesheet href="https://evil.example/x.css" type="text/css"?>\n'),
        ["processing instruction", "xml-stylesheet"],
    ),
    "svg12_handler": (
        logo(b'<handler xmlns:ev="http://www.w3.org/2001/xml-events" ev:event="load" '
             b'type="application/ecmascript">location="https://evil.example/"</handler>'),
        ["<handler>"],
    ),
    "css_escaped_import": (
        logo(b"<style>@\\69mport url(https://evil.example/x.css);</style>"
             b'<rect width="100" height="100"/>'),
        ["<style>"],
    ),
    "css_escaped_url_in_style": (
        logo(b'<rect width="100" height="100" style="fill:\\75rl(https://evil.example/p#x)"/>'),
        ["style attribute"],
    ),
    "css_escaped_url_in_fill": (
        logo(b'<rect width="100" height="100" fill="\\75rl(https://evil.example/p#x)"/>'),
        ["fill"],
    ),
    "external_doctype": (
        b'<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN" "https://evil.example/svg11.dtd">\n'
        + logo(b'<rect width="100" height="100"/>'),
        ["DOCTYPE"],
    ),
    "xml_base": (
        logo(b'<defs><rect id="r" width="100" height="100"/></defs>'
             b'<g xml:base="https://evil.example/"><use xlink:href="#r"/></g>'),
        ["xml:base"],
    ),
    "unknown_attribute": (
        logo(b'<rect width="100" height="100" requiredExtensions="https://evil.example/"/>'),
        ["requiredExtensions"],
    ),
}


@pytest.fixture
def api(domain, organisation):  # noqa: F811
    return api_for(organisation)


@pytest.fixture
def owner_client(organisation):  # noqa: F811
    user = MembershipFactory(organisation=organisation, role="owner").user
    user.save()
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.parametrize("name", sorted(BYPASSES))
def test_it_refuses_a_validator_bypass_saying_what_is_not_allowed(api, owner_client, name):
    data, fragments = BYPASSES[name]

    reply = api.upload("/domains/good.test/bimi", data)
    page = owner_client.post(
        "/mail-admin/acme/domains/good.test/bimi/",
        {"logo": SimpleUploadedFile("logo.svg", data, "image/svg+xml")},
    )

    assert reply.status_code == 422, reply.content
    assert reply.json()["code"] == "svg_rejected" and reply.json()["field"] == "logo"
    for fragment in fragments:
        assert fragment in reply.json()["detail"], reply.json()["detail"]
    assert page.status_code == 422
    assert fragments[0] in page.content.decode().replace("&lt;", "<").replace("&gt;", ">")
    assert not DomainPosture.objects.filter(domain__name="good.test", bimi_sha256__gt="").exists()
    assert Client().get("/bimi/good.test/logo.svg").status_code == 404
    assert not AuditEvent.objects.filter(action="bimi.upload").exists()


def _shape(data: bytes) -> list[tuple[str, dict, str]]:
    root = ElementTree.fromstring(data)
    return [(e.tag, dict(e.attrib), (e.text or "").strip()) for e in root.iter()]


def test_it_serves_the_canonical_re_serialisation_not_the_uploaded_bytes(api):
    uploaded = GOOD.replace(b"<title>", b"<!-- made with an editor -->\n  <title>").replace(
        b"<rect ", b"<rect   \n     "
    )
    assert api.upload("/domains/good.test/bimi", uploaded).status_code == 200

    served = Client().get("/bimi/good.test/logo.svg")

    assert served.status_code == 200
    assert served["Content-Type"] == "image/svg+xml"
    assert served["X-Content-Type-Options"] == "nosniff"
    assert "default-src 'none'" in served["Content-Security-Policy"]
    assert "sandbox" in served["Content-Security-Policy"]
    assert served.content != uploaded
    assert b"<!--" not in served.content and b"made with an editor" not in served.content
    assert b">\n  <" not in served.content and b"   \n" not in served.content
    assert _shape(served.content) == _shape(GOOD)  # the same drawing, element for element
    # Uploading the served file again changes nothing: it is already canonical.
    assert api.upload("/domains/good.test/bimi", served.content).status_code == 200
    assert Client().get("/bimi/good.test/logo.svg").content == served.content
