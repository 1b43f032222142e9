"""The DNS posture pages of a domain (records, zone file, checks, DKIM, DMARC, BIMI, MTA-STS).

What is right for each record is identity/'s business and tested there; these tests check the
pages present it, and keep tenant and role rules.
"""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from identity.models import DkimKey, DnsCheck, DnsCheckHistory, DomainPosture
from mailboxes import services
from tenants.access import SYSTEM

DNS = "/mail-admin/acme/domains/acme.test/dns/"
LOGO = (
    b'<svg xmlns="http://www.w3.org/2000/svg" version="1.2" baseProfile="tiny-ps" '
    b'viewBox="0 0 100 100" width="100" height="100"><title>Acme</title>'
    b'<rect width="100" height="100" fill="#1f4fa8"/></svg>'
)


@pytest.fixture
def domain(org):
    return services.domain_create(actor=SYSTEM, organisation=org, name="acme.test")


def test_it_lists_every_record_with_copy_buttons_and_status(owner_client, domain):
    DnsCheck.objects.create(
        domain=domain,
        key="spf",
        name="acme.test",
        rtype="TXT",
        status="wrong",
        detail="No SPF record.",
        found=[],
        checked_at=timezone.now(),
        changed_at=timezone.now(),
    )
    page = owner_client.get(DNS).content.decode()
    assert "data-copy-target" in page and "Not checked" in page
    assert "No SPF record." in page and "Wrong" in page
    fragment = owner_client.get(DNS, headers={"X-Requested-With": "fetch"})
    assert b"<html" not in fragment.content and b"records" in fragment.content


def test_it_downloads_the_zone_file(owner_client, domain):
    response = owner_client.get(DNS + "zone/")
    assert response.status_code == 200
    assert "attachment" in response["Content-Disposition"]
    assert b"_dmarc.acme.test." in response.content


def test_it_queues_a_check(owner_client, domain, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        response = owner_client.post(DNS + "check/")
    assert response.status_code == 302 and response["Location"].endswith("?checking=1")
    assert len(callbacks) == 1


def test_it_rotates_dkim_after_confirmation(owner_client, domain):
    assert (
        b"Rotate the DKIM key"
        in owner_client.get("/mail-admin/acme/domains/acme.test/dkim/rotate/").content
    )
    assert owner_client.post("/mail-admin/acme/domains/acme.test/dkim/rotate/").status_code == 302
    assert DkimKey.objects.filter(domain=domain, state="pending").count() == 1
    again = owner_client.post("/mail-admin/acme/domains/acme.test/dkim/rotate/")
    assert again.status_code == 409 and b"already in progress" in again.content


def test_it_recommends_the_next_dmarc_stage_and_says_what_blocks_it(owner_client, domain):
    page = owner_client.get(DNS).content.decode()
    assert "Recommended next step" in page and "SPF has not been checked yet" in page
    response = owner_client.post(
        "/mail-admin/acme/domains/acme.test/dmarc/", {"policy": "quarantine", "pct": "25"}
    )
    assert response.status_code == 409
    response = owner_client.post(
        "/mail-admin/acme/domains/acme.test/dmarc/", {"policy": "quarantine", "pct": "lots"}
    )
    assert response.status_code == 422


def test_it_uploads_and_previews_a_bimi_logo(owner_client, domain):
    response = owner_client.post(
        "/mail-admin/acme/domains/acme.test/bimi/",
        {"logo": SimpleUploadedFile("logo.svg", LOGO, "image/svg+xml")},
    )
    assert response.status_code == 302
    assert DomainPosture.objects.get(domain=domain).bimi_sha256
    page = owner_client.get(DNS).content.decode()
    assert "/bimi/acme.test/logo.svg" in page and "Not published yet" in page


def test_it_shows_why_a_bimi_logo_is_refused(owner_client, domain):
    bad = LOGO.replace(b"<title>Acme</title>", b"<script>alert(1)</script>")
    response = owner_client.post(
        "/mail-admin/acme/domains/acme.test/bimi/",
        {"logo": SimpleUploadedFile("logo.svg", bad, "image/svg+xml")},
    )
    assert response.status_code == 422 and b"not SVG Tiny PS" in response.content


def test_it_sets_the_mta_sts_mode(owner_client, domain):
    response = owner_client.post("/mail-admin/acme/domains/acme.test/mta-sts/", {"mode": "enforce"})
    assert response.status_code == 302
    assert DomainPosture.objects.get(domain=domain).mtasts_mode == "enforce"
    bad = owner_client.post("/mail-admin/acme/domains/acme.test/mta-sts/", {"mode": "maybe"})
    assert bad.status_code == 422


def test_it_shows_check_history(owner_client, domain):
    DnsCheckHistory.objects.create(
        domain=domain,
        key="mx",
        name="acme.test",
        rtype="MX",
        status="ok",
        previous_status="wrong",
        detail="",
        checked_at=timezone.now(),
    )
    assert b"wrong \xe2\x86\x92 <strong>ok</strong>" in owner_client.get(DNS).content


def test_it_forbids_a_viewer_to_change_posture(viewer_client, domain):
    page = viewer_client.get(DNS).content.decode()
    assert "Rotate…" not in page and "Upload logo" not in page and "Save mode" not in page
    base = "/mail-admin/acme/domains/acme.test/"
    assert viewer_client.post(base + "dkim/rotate/").status_code == 403
    assert viewer_client.post(base + "dmarc/", {"policy": "reject"}).status_code == 403
    assert viewer_client.post(base + "mta-sts/", {"mode": "enforce"}).status_code == 403
    assert viewer_client.post(base + "bimi/", {"remove": "1"}).status_code == 403


def test_it_is_404_for_another_organisations_domain(stranger_client, domain):
    for suffix in ("", "zone/"):
        assert stranger_client.get(DNS + suffix).status_code == 404
    assert stranger_client.post(DNS + "check/").status_code == 404


def test_it_shows_the_dns_page_in_constant_queries(owner_client, domain, assert_constant_queries):
    def grow():
        for n in range(10):
            DnsCheckHistory.objects.create(
                domain=domain,
                key=f"k{n}",
                name="acme.test",
                rtype="TXT",
                status="ok",
                checked_at=timezone.now(),
            )

    grow()
    assert_constant_queries(owner_client, DNS, grow)
