"""The MTA-STS policy: set, served by Host header in exact RFC 8461 form, fetched and checked."""

import http.client
from urllib.parse import urlparse

import pytest
from django.test import Client

from identity import mtasts
from identity.selectors import dns_overview, posture_snapshot
from identity.services import mtasts_set
from identity.verify import check_mtasts_policy
from mailboxes.services import domain_create
from mailhost.errors import Invalid
from tenants.access import SYSTEM
from tenants.models import AuditEvent
from tests.identity.support import MAIL_HOST, http_fetcher

pytestmark = pytest.mark.django_db

TESTING_POLICY = f"version: STSv1\r\nmode: testing\r\nmx: {MAIL_HOST}\r\nmax_age: 604800\r\n"


def get_policy(host: str, path: str = mtasts.POLICY_PATH):
    return Client().get(path, HTTP_HOST=host)


def test_it_serves_the_policy_for_the_mta_sts_host_as_plain_text(domain):
    response = get_policy("mta-sts.good.test")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/plain"
    assert response.content.decode() == TESTING_POLICY


def test_it_accepts_a_port_and_any_case_in_the_host(domain):
    assert get_policy("MTA-STS.Good.Test:8443").content.decode() == TESTING_POLICY


@pytest.mark.parametrize(
    "host",
    [
        "mta-sts.unknown.test",
        "good.test",
        "mta-sts.",
        "mta-sts.good.test/../x",
        "[::1]:80",
        "mta-sts.a..test",
    ],
)
def test_it_answers_404_for_any_other_host(domain, host):
    assert get_policy(host).status_code in (400, 404)


def test_it_leaves_other_paths_on_the_mta_sts_host_to_host_validation(domain):
    assert get_policy("mta-sts.good.test", "/admin/").status_code == 400


def test_it_stops_serving_when_the_domain_is_disabled(domain):
    domain.status = "disabled"
    domain.save(update_fields=["status"])
    # Its mta-sts host is no longer a hosted domain's: refused like any unknown host name.
    assert get_policy("mta-sts.good.test").status_code == 400


def test_it_changes_the_policy_and_its_id_together(domain):
    before = dns_overview(SYSTEM, "good.test").mtasts_id
    mtasts_set(
        actor=SYSTEM, domain=domain, mode="enforce", mx=[MAIL_HOST, "*.backup.test"], max_age=86400
    )
    assert get_policy("mta-sts.good.test").content.decode() == (
        f"version: STSv1\r\nmode: enforce\r\nmx: {MAIL_HOST}\r\nmx: *.backup.test\r\n"
        "max_age: 86400\r\n"
    )
    after = dns_overview(SYSTEM, "good.test").mtasts_id
    assert after != before
    assert after == mtasts.policy_id(get_policy("mta-sts.good.test").content.decode())
    assert AuditEvent.objects.get(action="mtasts.set").after["mode"] == "enforce"


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"mode": "strict"}, "mode", "testing, enforce, none"),
        ({"mx": ["mx.other.test"]}, "mx", "senders would refuse to deliver"),
        ({"mx": ["bad host!"]}, "mx", "is not an MX host name"),
        ({"max_age": 40_000_000}, "max_age", "1–31557600"),
    ],
)
def test_it_refuses_a_policy_that_would_break_delivery_or_the_rfc(domain, changes, field, message):
    with pytest.raises(Invalid, match=message) as caught:
        mtasts_set(actor=SYSTEM, domain=domain, **changes)
    assert caught.value.field == field
    assert not AuditEvent.objects.filter(action="mtasts.set").exists()


@pytest.mark.django_db(transaction=True)
def test_it_is_served_by_the_running_portal_and_the_verifier_accepts_it(
    mail_settings, organisation, live_server
):
    domain = domain_create(actor=SYSTEM, organisation=organisation, name="served.test")
    mtasts_set(actor=SYSTEM, domain=domain, mode="enforce")
    url = urlparse(live_server.url)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=5)
    connection.request("GET", mtasts.POLICY_PATH, headers={"Host": "mta-sts.served.test"})
    response = connection.getresponse()
    assert response.status == 200
    assert response.getheader("Content-Type") == "text/plain"
    assert response.read().decode() == (
        f"version: STSv1\r\nmode: enforce\r\nmx: {MAIL_HOST}\r\nmax_age: 604800\r\n"
    )
    connection.close()
    status, detail, _found = check_mtasts_policy(
        posture_snapshot(domain), http_fetcher(live_server.url)
    )
    assert (status, detail) == ("ok", f"The policy (mode enforce) is served and lists {MAIL_HOST}.")
