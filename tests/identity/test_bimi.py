import hashlib
import importlib
import urllib.request
from pathlib import Path

import pytest
from django.test import Client

from identity.bimi import SvgRejected, validate_svg
from identity.selectors import domain_records
from identity.services import bimi_remove, bimi_upload, dmarc_set_stage
from mailhost.errors import Invalid
from tenants.access import SYSTEM
from tenants.models import AuditEvent

SVG = Path(__file__).parent / "svg"
LIMIT = 32 * 1024


def svg(name: str) -> bytes:
    return (SVG / name).read_bytes()


def canonical(name: str) -> bytes:
    return validate_svg(svg(name), max_bytes=LIMIT).data


def reasons_for(name: str) -> list[str]:
    with pytest.raises(SvgRejected) as caught:
        validate_svg(svg(name), max_bytes=LIMIT)
    return caught.value.reasons


def test_it_accepts_a_tiny_ps_logo():
    logo = validate_svg(svg("good.svg"), max_bytes=LIMIT)
    assert logo.title == "Acme"
    assert logo.view_box == (0, 0, 100, 100)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("script.svg", ["a <script> element"]),
        (
            "event_handler.svg",
            ["<svg> has an event handler (onload)", "<rect> has an event handler (onclick)"],
        ),
        ("external_reference.svg", ["<use> links to 'https://evil.example/sprite.svg#logo'"]),
        ("raster_image.svg", ["an <image> element"]),
        ("animation.svg", ["<animate>: animation is not allowed"]),
        ("no_title.svg", ["needs a <title> element"]),
        ("not_square.svg", ["viewBox is 200×100; BIMI logos must be square"]),
        ("wrong_profile.svg", ["baseProfile=\"tiny-ps\" (found 'full')", 'version="1.2"']),
        ("entity_bomb.svg", ["declares XML entities"]),
        ("external_entity.svg", ["declares XML entities"]),
        ("malformed.svg", ["not well-formed XML"]),
        # CSS is refused as a whole now (an allow-list), not scanned for @import and url().
        ("css_url.svg", ["a <style> element", "<rect> has a style attribute"]),
        ("foreign_object.svg", ["<foreignObject>", "<iframe>"]),
        ("not_svg.svg", ["not an <svg>", "<title>", "viewBox"]),
    ],
)
def test_it_refuses_a_hostile_or_broken_svg_saying_why(name, expected):
    reasons = reasons_for(name)
    for fragment in expected:
        assert any(fragment in reason for reason in reasons), (fragment, reasons)


def test_it_refuses_an_svg_over_the_size_limit():
    big = svg("good.svg").replace(b"</svg>", b"<!--" + b"x" * LIMIT + b"--></svg>")
    with pytest.raises(SvgRejected, match="the limit is 32768 bytes"):
        validate_svg(big, max_bytes=LIMIT)


def test_it_reports_every_problem_of_one_file_at_once():
    reasons = reasons_for("event_handler.svg")
    assert len(reasons) == 2


@pytest.mark.django_db
def test_it_stores_a_valid_logo_and_audits_it(domain):
    posture = bimi_upload(actor=SYSTEM, domain=domain, data=svg("good.svg"))
    assert bytes(posture.bimi_svg) == canonical("good.svg")  # re-serialised, not the upload
    event = AuditEvent.objects.get(action="bimi.upload")
    assert event.after["title"] == "Acme"


@pytest.mark.django_db
def test_it_refuses_a_bad_logo_with_every_reason_and_stores_nothing(domain):
    with pytest.raises(Invalid) as caught:
        bimi_upload(actor=SYSTEM, domain=domain, data=svg("event_handler.svg"))
    assert caught.value.code == "svg_rejected" and caught.value.field == "logo"
    assert "onload" in caught.value.detail and "onclick" in caught.value.detail
    assert not AuditEvent.objects.filter(action="bimi.upload").exists()


@pytest.mark.django_db
def test_it_publishes_the_bimi_record_only_while_dmarc_enforces_on_all_mail(domain):
    bimi_upload(actor=SYSTEM, domain=domain, data=svg("good.svg"))

    def bimi_values():
        return [r.value for r in domain_records(domain) if r.key == "bimi"]

    assert bimi_values() == []  # p=none
    dmarc_set_stage(actor=SYSTEM, domain=domain, policy="quarantine", pct=50, force=True)
    assert bimi_values() == []  # pct<100
    dmarc_set_stage(actor=SYSTEM, domain=domain, policy="quarantine", pct=100, force=True)
    assert bimi_values() == ["v=BIMI1; l=https://portal.provider.test/bimi/good.test/logo.svg"]
    bimi_remove(actor=SYSTEM, domain=domain)
    assert bimi_values() == []


@pytest.mark.django_db
def test_it_serves_the_logo_at_a_stable_url_as_svg(domain):
    bimi_upload(actor=SYSTEM, domain=domain, data=svg("good.svg"))
    response = Client().get("/bimi/good.test/logo.svg")
    assert response.status_code == 200
    assert response["Content-Type"] == "image/svg+xml"
    assert response.content == canonical("good.svg")
    assert "default-src 'none'" in response["Content-Security-Policy"]
    assert response["X-Content-Type-Options"] == "nosniff"
    again = Client().get("/bimi/good.test/logo.svg", headers={"If-None-Match": response["ETag"]})
    assert again.status_code == 304


@pytest.mark.django_db
def test_it_answers_404_for_a_domain_without_a_logo_or_not_hosted(domain):
    assert Client().get("/bimi/good.test/logo.svg").status_code == 404
    assert Client().get("/bimi/nowhere.test/logo.svg").status_code == 404
    assert Client().get("/bimi/..%2Fetc/logo.svg").status_code == 404


@pytest.mark.django_db(transaction=True)
def test_it_serves_the_logo_from_the_running_portal(mail_settings, organisation, live_server):
    from mailboxes.services import domain_create

    domain = domain_create(actor=SYSTEM, organisation=organisation, name="logo.test")
    bimi_upload(actor=SYSTEM, domain=domain, data=svg("good.svg"))
    with urllib.request.urlopen(f"{live_server.url}/bimi/logo.test/logo.svg", timeout=5) as reply:
        assert reply.status == 200
        assert reply.headers["Content-Type"] == "image/svg+xml"
        assert reply.read() == canonical("good.svg")


def test_it_re_serialises_a_logo_canonically_and_stably():
    data = canonical("good.svg")
    assert data.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n<svg xmlns=')
    assert b"\n  " not in data  # whitespace between elements is not carried over
    assert validate_svg(data, max_bytes=LIMIT).data == data


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'<use xlink:href="#nowhere"/>', "which is not in the file"),
        (b'<g><stop offset="0"/></g>', "<stop> is not allowed inside <g>"),
        (b'<title>x<g/></title>', "<g> is not allowed inside <title>"),
        (b'<rect width="1" height="1" fill="url(#a) red; x"/>', "fill="),
        (b'<rect width="1" height="1" class="brand"/>', "the attribute class"),
        (b'<switch/>', "<switch>, which SVG Tiny PS does not allow"),
        (b'<rect id="a b" width="1" height="1"/>', "has the id"),
    ],
)
def test_it_allows_only_the_tiny_ps_elements_attributes_and_local_references(body, expected):
    head = (
        b'<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" '
        b'version="1.2" baseProfile="tiny-ps" viewBox="0 0 10 10"><title>Acme</title>'
    )
    with pytest.raises(SvgRejected) as caught:
        validate_svg(head + body + b"</svg>", max_bytes=LIMIT)
    assert any(expected in reason for reason in caught.value.reasons), caught.value.reasons


@pytest.mark.django_db
def test_it_canonicalises_or_removes_logos_stored_before_the_allow_list(domain, organisation):
    from django.apps import apps

    from identity.models import DomainPosture
    from mailboxes.services import domain_create

    migration = importlib.import_module("identity.migrations.0003_bimi_logos_canonical")
    legacy = svg("good.svg").replace(b"<title>", b"<!-- editor -->\n<title>")
    DomainPosture.objects.create(domain=domain, bimi_svg=legacy, bimi_sha256="old")
    other = domain_create(actor=SYSTEM, organisation=organisation, name="other.test")
    hostile = svg("good.svg").replace(
        b"<svg ", b'<?xml-stylesheet href="https://evil.example/x.css"?>\n<svg ', 1
    )
    DomainPosture.objects.create(domain=other, bimi_svg=hostile, bimi_sha256="old")

    migration.canonicalise_logos(apps, None)

    kept = DomainPosture.objects.get(domain=domain)
    assert bytes(kept.bimi_svg) == canonical("good.svg")
    assert kept.bimi_sha256 == hashlib.sha256(canonical("good.svg")).hexdigest()
    dropped = DomainPosture.objects.get(domain=other)
    assert dropped.bimi_svg is None and dropped.bimi_sha256 == ""
    event = AuditEvent.objects.get(action="bimi.remove", target="other.test")
    assert "processing instruction" in event.after["reason"]
