"""Reverse names of reported sources, looked up after the report is stored, against a real
Knot server on loopback: forward-confirmed, absent, or left for later when DNS fails."""

import pytest

from reports.models import SourceName
from reports.rdns import source_names, source_names_resolve
from reports.tasks import resolve_sources
from tests.identity.support import IPV4, IPV6, MAIL_HOST

pytestmark = [pytest.mark.dns, pytest.mark.django_db]

UNNAMED = "192.0.2.99"  # in the reverse zone, without a PTR


def test_it_names_sources_and_confirms_them_forward(dns_world):
    dns_world({}, ptr_target=f"{MAIL_HOST}.")
    assert resolve_sources.apply(args=[[IPV4, IPV6, UNNAMED]]).get() == 3
    names = source_names([IPV4, IPV6, UNNAMED])
    assert (names[IPV4].name, names[IPV4].confirmed) == (MAIL_HOST, True)
    assert (names[IPV6].name, names[IPV6].confirmed) == (MAIL_HOST, True)
    assert (names[UNNAMED].name, names[UNNAMED].confirmed) == ("", False)
    assert source_names_resolve([IPV4, UNNAMED]) == 0  # fresh: not asked again


def test_a_name_that_does_not_point_back_is_not_confirmed(dns_world):
    dns_world({}, ptr_target="mail.elsewhere.test.")
    source_names_resolve([IPV4])
    assert (SourceName.objects.get(ip=IPV4).name, SourceName.objects.get(ip=IPV4).confirmed) == (
        "mail.elsewhere.test", False)


def test_nothing_is_stored_when_dns_does_not_answer(dns_world, settings):
    dns_world({}, broken=["2.0.192.in-addr.arpa"])
    settings.MAILHOST_DNS_RESOLVERS = ["127.0.0.1@9"]  # nobody listens: a timeout
    settings.MAILHOST_DNS_TIMEOUT_MS = settings.MAILHOST_DNS_LIFETIME_MS = 300
    assert source_names_resolve([IPV4]) == 0
    assert not SourceName.objects.exists()
