"""The host names the portal answers to: its own (the mail host among them) for everything, the
service hosts of hosted domains (mta-sts., autoconfig., autodiscover.) for their endpoints
only, and nothing else.

Before: the default ALLOWED_HOSTS lacked the mail host, so the BIMI logo at the URL published
in DNS and autodiscover asked at the SRV target (Host: mail.localhost) answered 400.
The attacker here points a name of their own, or a victim's service host, at the portal and
tries to reach pages, admin, API or another domain's files through it.
"""

import http.client
from pathlib import Path
from urllib.parse import urlsplit

import defusedxml.ElementTree as ET
import pytest
from django.conf import settings as django_settings
from django.test import Client

from identity.selectors import domain_records
from identity.services import bimi_upload, dmarc_set_stage
from mailboxes.models import Domain
from mailboxes.services import domain_create, domain_update
from tenants.access import SYSTEM
from tests.factories import OrganisationFactory

SVG = Path(__file__).resolve().parent.parent / "identity" / "svg" / "good.svg"
AUTODISCOVER = (
    '<?xml version="1.0" encoding="utf-8"?><Autodiscover xmlns="http://schemas.microsoft.com/'
    'exchange/autodiscover/outlook/requestschema/2006"><Request><EMailAddress>{address}'
    "</EMailAddress></Request></Autodiscover>"
)
PORTAL_PATHS = [
    "/mail-admin/", "/admin/login/", "/accounts/login/", "/api/v1/health", "/api/v1/organisations",
    "/mailbox/login/", "/static/css/mailhost.css", "/",
]


@pytest.fixture
def victim(db):
    organisation = OrganisationFactory(slug="victim", name="Victim")
    domain = domain_create(actor=SYSTEM, organisation=organisation, name="victim.test")
    bimi_upload(actor=SYSTEM, domain=domain, data=SVG.read_bytes())
    dmarc_set_stage(actor=SYSTEM, domain=domain, policy="reject", pct=100, force=True)
    return domain


def published_bimi_url(domain) -> str:
    [value] = [r.value for r in domain_records(domain) if r.key == "bimi"]
    return value.split("l=", 1)[1]


def autodiscover(client: Client, host: str, address: str = "anna@victim.test"):
    return client.post("/autodiscover/autodiscover.xml", AUTODISCOVER.format(address=address),
                       content_type="text/xml", HTTP_HOST=host)


def test_it_serves_the_bimi_logo_at_the_url_published_in_dns(client, victim):
    url = urlsplit(published_bimi_url(victim))

    response = client.get(url.path, HTTP_HOST=url.netloc, secure=url.scheme == "https")

    assert response.status_code == 200, response.content[:300]
    assert response["Content-Type"] == "image/svg+xml"


def test_it_answers_autodiscover_at_the_mail_host(client, victim):
    response = autodiscover(client, django_settings.MAILHOST_HOSTNAME)

    assert response.status_code == 200, response.content[:300]
    assert b"<Server>mail.localhost</Server>" in response.content


def test_it_answers_each_service_host_of_a_hosted_domain_for_its_own_endpoint(client, victim):
    policy = client.get("/.well-known/mta-sts.txt", HTTP_HOST="mta-sts.victim.test")
    assert policy.status_code == 200 and policy.content.startswith(b"version: STSv1")
    config = client.get("/mail/config-v1.1.xml", HTTP_HOST="autoconfig.victim.test:443")
    assert ET.fromstring(config.content).findtext("emailProvider/domain") == "victim.test"
    assert autodiscover(client, "autodiscover.victim.test").status_code == 200
    logo = client.get("/bimi/victim.test/logo.svg", HTTP_HOST="autoconfig.victim.test")
    assert logo.status_code == 200 and logo["Content-Type"] == "image/svg+xml"


@pytest.mark.parametrize("host", ["mta-sts.victim.test", "autoconfig.victim.test",
                                  "autodiscover.victim.test", "AUTOCONFIG.Victim.Test:8443"])
@pytest.mark.parametrize("path", PORTAL_PATHS)
def test_it_keeps_pages_admin_api_and_files_off_a_service_host(client, victim, host, path):
    response = client.get(path, HTTP_HOST=host)
    assert response.status_code == 400


def test_it_answers_only_the_endpoint_of_each_label_and_only_the_domains_own_logo(client, victim):
    other = domain_create(actor=SYSTEM, organisation=victim.organisation, name="other.test")
    bimi_upload(actor=SYSTEM, domain=other, data=SVG.read_bytes())
    refused = [
        client.get("/mail/config-v1.1.xml", HTTP_HOST="mta-sts.victim.test"),
        client.get("/.well-known/mta-sts.txt", HTTP_HOST="autoconfig.victim.test"),
        autodiscover(client, "autoconfig.victim.test"),
        client.get("/bimi/other.test/logo.svg", HTTP_HOST="autoconfig.victim.test"),
    ]
    assert [r.status_code for r in refused] == [400, 400, 400, 400]


@pytest.mark.parametrize(
    "host",
    [
        "autoconfig.unhosted.test",  # a name the attacker points at the portal
        "evil.example",
        "mail.victim.test",  # not a service label
        "autoconfig.autoconfig.victim.test",
        "autoconfig.victim.test.evil.example",
        "autoconfig.victim.test@evil.example",
        "autoconfig.",
        "[::2]",
    ],
)
def test_it_refuses_every_other_host_name(client, victim, host):
    assert client.get("/mail/config-v1.1.xml", HTTP_HOST=host).status_code == 400
    assert client.get("/mail-admin/", HTTP_HOST=host).status_code == 400


def test_it_stops_answering_a_domains_service_hosts_once_it_is_disabled(client, victim):
    def policy():
        return client.get("/.well-known/mta-sts.txt", HTTP_HOST="mta-sts.victim.test")

    assert policy().status_code == 200
    domain_update(actor=SYSTEM, domain=victim, status="disabled")
    assert policy().status_code == 400
    config = client.get("/mail/config-v1.1.xml", HTTP_HOST="autoconfig.victim.test")
    assert config.status_code == 400


def test_it_lists_no_wildcard_in_allowed_hosts():
    assert not [h for h in django_settings.ALLOWED_HOSTS if h.startswith((".", "*"))]


def test_it_checks_a_service_host_with_one_query_then_remembers_it(
    victim, django_assert_num_queries
):
    from mailboxes.selectors import hosted_domain_for_host  # (new: not on main)

    with django_assert_num_queries(1):
        assert hosted_domain_for_host("autoconfig.victim.test").domain == "victim.test"
        assert hosted_domain_for_host("autoconfig.victim.test").label == "autoconfig"
    with django_assert_num_queries(1):
        assert hosted_domain_for_host("autoconfig.unhosted.test") is None
        assert hosted_domain_for_host("autoconfig.unhosted.test") is None
    with django_assert_num_queries(0):
        assert hosted_domain_for_host("www.victim.test") is None  # not a service label
    # A change to a domain is seen at once, not after the cache time.
    Domain.objects.filter(pk=victim.pk).update(status="disabled")
    victim.save(update_fields=["name"])  # any save of a domain forgets what was remembered
    assert hosted_domain_for_host("autoconfig.victim.test") is None


@pytest.mark.django_db(transaction=True)
def test_it_routes_real_http_requests_by_host_header(live_server):
    organisation = OrganisationFactory(slug="live", name="Live")
    domain = domain_create(actor=SYSTEM, organisation=organisation, name="live.test")
    bimi_upload(actor=SYSTEM, domain=domain, data=SVG.read_bytes())
    port = urlsplit(live_server.url).port

    def status(method: str, path: str, host: str, body: str | None = None) -> int:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        headers = {"Host": host, "Content-Type": "text/xml"}
        connection.request(method, path, body=body, headers=headers)
        return connection.getresponse().status

    mail_host = django_settings.MAILHOST_HOSTNAME
    assert status("GET", "/.well-known/mta-sts.txt", "mta-sts.live.test") == 200
    assert status("GET", "/mail/config-v1.1.xml", "autoconfig.live.test") == 200
    assert status("POST", "/autodiscover/autodiscover.xml", "autodiscover.live.test",
                  AUTODISCOVER.format(address="a@live.test")) == 200
    assert status("POST", "/autodiscover/autodiscover.xml", mail_host,
                  AUTODISCOVER.format(address="a@live.test")) == 200
    assert status("GET", "/bimi/live.test/logo.svg", f"{mail_host}:{port}") == 200
    assert status("GET", "/mail-admin/", mail_host) == 302  # the portal's own name: sign in
    assert status("GET", "/mail-admin/", "autoconfig.live.test") == 400
    assert status("GET", "/admin/login/", "mta-sts.live.test") == 400
    assert status("GET", "/api/v1/health", "autodiscover.live.test") == 400
    assert status("GET", "/mail/config-v1.1.xml", "autoconfig.elsewhere.test") == 400
