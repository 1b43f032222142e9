"""SPF evaluation (RFC 7208) against records served by a real DNS server."""

import pytest

from identity import spf
from tests.identity.support import (
    IPV4,
    IPV6,
    OTHER_IPV4,
    check_now,
    lookup_at,
    provider_records,
)

pytestmark = pytest.mark.dns

SPF_ZONE = "\n".join(
    [
        'inc.test. TXT "v=spf1 include:_spf.provider.test -all"',
        'redirect.test. TXT "v=spf1 redirect=_spf.provider.test"',
        "mx.test. MX 10 mail.provider.test.",
        'mx.test. TXT "v=spf1 mx -all"',
        'cidr.test. TXT "v=spf1 ip4:192.0.2.0/24 ip6:2001:db8::/32 -all"',
        'acidr.test. TXT "v=spf1 a:mail.provider.test/24 -all"',
        'macro.test. TXT "v=spf1 exists:%{ir}._ok.provider.test -all"',
        'soft.test. TXT "v=spf1 ~all"',
        'two.test. TXT "v=spf1 -all"',
        'two.test. TXT "v=spf1 +all"',
        'dangling.test. TXT "v=spf1 include:nothing-here.provider.test -all"',
        'void.test. TXT "v=spf1 a:n1.provider.test a:n2.provider.test a:n3.provider.test -all"',
        'temp.test. TXT "v=spf1 include:broken.test -all"',
        'syntax.test. TXT "v=spf1 ipv4:192.0.2.25 -all"',
        # Eleven includes deep: receivers stop at ten lookups.
        *[f'l{i}.test. TXT "v=spf1 include:l{i + 1}.test -all"' for i in range(11)],
        f'l11.test. TXT "v=spf1 ip4:{IPV4} -all"',
        # Our IP first: check_host passes early, but a forged sender would hit the limit.
        f'late.test. TXT "v=spf1 ip4:{IPV4} include:l0.test -all"',
    ]
)


@pytest.fixture
def lookup(knot):
    zones = {
        "provider.test": provider_records() + "25.2.0.192._ok A 127.0.0.2\n",
        "test": SPF_ZONE,
    }
    server = knot(zones, broken=["broken.test"])
    return lookup_at(server.address).spf_lookup


@pytest.mark.parametrize(
    ("domain", "ip", "result"),
    [
        ("inc.test", IPV4, "pass"),
        ("inc.test", IPV6, "pass"),
        ("inc.test", OTHER_IPV4, "fail"),
        ("redirect.test", IPV4, "pass"),
        ("redirect.test", OTHER_IPV4, "fail"),
        ("mx.test", IPV4, "pass"),
        ("mx.test", IPV6, "pass"),
        ("cidr.test", "192.0.2.200", "pass"),
        ("cidr.test", "2001:db8:ffff::1", "pass"),
        ("acidr.test", "192.0.2.9", "pass"),
        ("acidr.test", OTHER_IPV4, "fail"),
        ("macro.test", IPV4, "pass"),
        ("macro.test", "192.0.2.26", "fail"),
        ("soft.test", IPV4, "softfail"),
        ("two.test", IPV4, "permerror"),
        ("dangling.test", IPV4, "permerror"),
        ("void.test", IPV4, "permerror"),
        ("temp.test", IPV4, "temperror"),
        ("syntax.test", IPV4, "permerror"),
        ("l0.test", IPV4, "permerror"),
        ("late.test", IPV4, "pass"),
        ("nothing.test", IPV4, "none"),
    ],
)
def test_it_evaluates_spf_as_a_receiver_would(lookup, domain, ip, result):
    assert spf.check_host(ip, domain, lookup).result == result


def test_it_counts_the_lookups_of_the_whole_tree(lookup):
    assert spf.count_lookups("inc.test", lookup) == 1
    assert spf.count_lookups("redirect.test", lookup) == 1
    assert spf.count_lookups("late.test", lookup) == spf.LOOKUP_LIMIT + 1  # stops counting there


def test_it_says_which_limit_was_broken(lookup):
    result = spf.check_host(IPV4, "l0.test", lookup)
    assert result.detail == "more than 10 DNS lookups (at include)"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("record", "status", "detail"),
    [
        (
            '"v=spf1 include:_spf.provider.test -all"',
            "ok",
            f"SPF passes for {IPV4}, {IPV6} (1 of 10 DNS lookups).",
        ),
        (f'"v=spf1 ip4:{IPV4} ip6:{IPV6} ~all"', "ok", "Ending with -all is recommended."),
        (
            f'"v=spf1 ip4:{IPV4} -all"',
            "wrong",
            f"SPF does not authorise {IPV6}: fail (matched -all).",
        ),
        (
            f'"v=spf1 ip4:{IPV4} ip6:{IPV6} include:l0.test -all"',
            "wrong",
            "The SPF record needs more than 10 DNS lookups; receivers stop at 10 and report an "
            "error.",
        ),
        ('"v=spf1 include:broken.test -all"', "unknown", "SPF evaluation for"),
        ('"v=spf1 +all"', "wrong", "it lets anyone send as the domain"),
    ],
)
def test_it_checks_the_domains_spf_semantically(dns_world, domain, record, status, detail):
    dns_world({"good.test": f"good.test. TXT {record}\n", "test": SPF_ZONE}, broken=["broken.test"])
    result = check_now(domain)["spf"]
    assert result.status == status, result
    assert detail in result.detail


@pytest.mark.django_db
def test_it_refuses_two_spf_records_even_if_one_is_right(dns_world, domain):
    dns_world(
        {
            "good.test": (
                f'good.test. TXT "v=spf1 ip4:{IPV4} ip6:{IPV6} -all"\n'
                'good.test. TXT "v=spf1 -all"\ngood.test. TXT "google-site-verification=abc"\n'
            )
        }
    )
    result = check_now(domain)["spf"]
    assert result.status == "wrong"
    assert result.detail == "There are 2 SPF records; receivers treat that as an error."
    assert len(result.found) == 2
