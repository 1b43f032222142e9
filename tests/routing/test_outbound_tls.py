"""Outbound TLS posture against the real daemons: MTA-STS through the node's resolver daemon,
DANE through the node's validating unbound, a per-domain override, and every TLS failure
recorded by the node's event agent. All of it in a network namespace (tls_world.py); no
portal, database or Redis is involved: the policy is node state.
"""

import re

import pytest

from mailhost.backend.tls_policy import POLICY_MAP, TlsPolicySnap, render_policy_map
from tests.routing.tls_world import start_stack_in_ns, start_world, stop_world
from tests.stack import wait_for

pytestmark = pytest.mark.stack


@pytest.fixture(scope="module")
def world():
    world = start_world()
    try:
        yield world
    finally:
        stop_world(world)


def _attempt(world, domain: str) -> re.Match | None:
    """Postfix's delivery line for the first recipient at `domain`, once there is one."""
    pattern = re.compile(rf"to=<[^>]*@{re.escape(domain)}>, relay=(?P<relay>\S+), .*?"
                         r"dsn=(?P<dsn>[\d.]+), status=(?P<status>\w+) \((?P<reply>.*)\)")
    return pattern.search(world.log())


@pytest.mark.parametrize("peer_name", ["sts-ok", "dane-ok"],
                         ids=["mta-sts policy MX", "dane TLSA verifies"])
def test_it_delivers_over_verified_tls_when_the_policy_is_met(world, peer_name):
    peer, subject = world.peer(peer_name), peer_name.replace("-", " ")
    world.send(f"someone@{peer.domain}", subject)
    assert wait_for(lambda: world.received(peer, subject), timeout=60)
    assert f"Verified TLS connection established to {peer.mx}[{peer.ip}]:25" in world.log()
    assert world.failures(peer.domain) == []


def test_mta_sts_defers_to_an_mx_whose_certificate_does_not_match_and_records_it(world):
    peer = world.peer("sts-bad")
    world.send(f"someone@{peer.domain}", "sts bad")
    attempt = wait_for(lambda: _attempt(world, peer.domain), timeout=60)
    assert attempt["status"] == "deferred" and attempt["dsn"].startswith("4.7.")
    failures = wait_for(lambda: world.failures(peer.domain), timeout=30)
    assert [(f["mx_host"], f["mx_ip"], f["policy_type"], f["result_type"]) for f in failures] \
        == [(peer.mx, peer.ip, "sts", "certificate-host-mismatch")]
    assert f"mx: {peer.mx}" in failures[0]["policy"]
    assert world.received(peer, "sts bad") == []  # the peer never got the message


def test_dane_defers_when_no_tlsa_record_matches_and_records_it(world):
    peer = world.peer("dane-bad")
    world.send(f"someone@{peer.domain}", "dane bad")
    attempt = wait_for(lambda: _attempt(world, peer.domain), timeout=60)
    assert (attempt["status"], attempt["dsn"]) == ("deferred", "4.7.5")
    failures = wait_for(lambda: world.failures(peer.domain), timeout=30)
    assert [(f["mx_host"], f["policy_type"], f["result_type"]) for f in failures] == [
        (peer.mx, "tlsa", "tlsa-invalid")]
    assert world.received(peer, "dane bad") == []


def test_a_per_domain_override_demands_verified_tls_from_a_partner(world):
    peer = world.peer("partner")
    world.send(f"first@{peer.domain}", "partner before")  # no policy: opportunistic TLS
    assert wait_for(lambda: world.received(peer, "partner before"), timeout=60)

    # What the reconciler writes for a routing.TlsPolicy row (routing/node.py), then reloads.
    world.stack.cfg.path(POLICY_MAP).write_text(
        render_policy_map([TlsPolicySnap(peer.domain, "secure")]))
    world.stack.reload_postfix()
    world.send(f"second@{peer.domain}", "partner after")
    pattern = re.compile(rf"to=<second@{re.escape(peer.domain)}>, .*?dsn=(?P<dsn>[\d.]+), "
                         r"status=(?P<status>\w+)")
    attempt = wait_for(lambda: pattern.search(world.log()), timeout=60)
    assert attempt["status"] == "deferred" and attempt["dsn"].startswith("4.7.")
    failures = wait_for(lambda: world.failures(peer.domain), timeout=30)
    assert [(f["policy_type"], f["result_type"]) for f in failures] == [
        ("local", "certificate-host-mismatch")]
    assert world.received(peer, "partner after") == []


def test_with_the_mta_sts_resolver_down_mail_waits_instead_of_going_without_its_policy(world):
    # An enforce-mode policy and an MX whose certificate verifies: only a missing policy
    # lookup can stop the mail (an opportunistic attempt would deliver it).
    peer = world.peer("sts-down")
    world.stack.stop_daemon("mta-sts")
    try:
        world.send(f"later@{peer.domain}", "sts resolver down")
        pattern = re.compile(rf"to=<later@{re.escape(peer.domain)}>, .*?dsn=(?P<dsn>[\d.]+), "
                             r"status=(?P<status>\w+) \((?P<reply>.*)\)")
        attempt = wait_for(lambda: pattern.search(world.log()), timeout=60)
        # Postfix's answer to a failed policy lookup; the MX is never even tried.
        assert (attempt["status"], attempt["dsn"], attempt["reply"]) == (
            "deferred", "4.7.5", "client TLS configuration problem")
        assert world.received(peer, "sts resolver down") == []
        assert not re.search(rf"to=<later@{re.escape(peer.domain)}>, .*status=sent", world.log())
    finally:
        start_stack_in_ns(world)  # back for whatever runs next
