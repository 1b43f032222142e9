"""DMARC stages: none → quarantine (pct) → reject, gated on SPF and DKIM passing."""

import pytest

from identity.selectors import dns_overview
from identity.services import dmarc_set_stage, dns_check_run
from mailhost.errors import Conflict, Invalid
from tenants.access import SYSTEM
from tenants.models import AuditEvent
from tests.identity.support import fragment_for, portal_fetcher

pytestmark = pytest.mark.django_db


def test_it_refuses_to_tighten_before_spf_and_dkim_are_verified(domain):
    with pytest.raises(Conflict) as caught:
        dmarc_set_stage(actor=SYSTEM, domain=domain, policy="quarantine", pct=25)
    assert caught.value.code == "dns_checks_failing"
    selector = domain.dkim_keys.get().selector
    assert "SPF has not been checked yet." in caught.value.detail
    assert f"DKIM {selector} has not been checked yet." in caught.value.detail
    assert dns_overview(SYSTEM, "good.test").posture.dmarc_policy == "none"


def test_it_tightens_when_forced_and_audits_why_it_would_have_refused(domain):
    dmarc_set_stage(actor=SYSTEM, domain=domain, policy="quarantine", pct=25, force=True)
    event = AuditEvent.objects.get(action="dmarc.stage")
    assert event.before == {"policy": "none", "pct": 100}
    assert event.after["policy"] == "quarantine" and event.after["pct"] == 25
    assert event.after["forced"] is True
    assert "SPF has not been checked yet." in event.after["blockers"]


def test_it_always_allows_relaxing(domain):
    dmarc_set_stage(actor=SYSTEM, domain=domain, policy="reject", force=True)
    dmarc_set_stage(actor=SYSTEM, domain=domain, policy="quarantine", pct=50)
    dmarc_set_stage(actor=SYSTEM, domain=domain, policy="none", pct=30)
    view = dns_overview(SYSTEM, "good.test")
    assert (view.posture.dmarc_policy, view.posture.dmarc_pct) == ("none", 100)
    assert AuditEvent.objects.filter(action="dmarc.stage", after__forced=False).count() == 2


@pytest.mark.parametrize(
    ("policy", "pct", "field"),
    [
        ("block", 100, "policy"),
        ("quarantine", 0, "pct"),
        ("reject", 101, "pct"),
        ("reject", True, "pct"),
    ],
)
def test_it_refuses_unknown_stages(domain, policy, pct, field):
    with pytest.raises(Invalid) as caught:
        dmarc_set_stage(actor=SYSTEM, domain=domain, policy=policy, pct=pct, force=True)
    assert caught.value.field == field


@pytest.mark.dns
def test_it_recommends_and_allows_the_next_stage_once_the_checks_pass(dns_world, domain):
    server = dns_world({"good.test": fragment_for(domain)})
    dns_check_run(actor=SYSTEM, domain=domain, fetch_policy=portal_fetcher())
    view = dns_overview(SYSTEM, "good.test")
    assert view.dmarc_next == ("quarantine", 25) and view.dmarc_blockers == []
    dmarc_set_stage(actor=SYSTEM, domain=domain, policy="quarantine", pct=25)
    assert AuditEvent.objects.get(action="dmarc.stage").after["forced"] is False
    assert dns_overview(SYSTEM, "good.test").dmarc_next == ("quarantine", 50)

    server.set_zone(
        "good.test",
        fragment_for(domain).replace("ip4:192.0.2.25 ip6:2001:db8::25", "ip4:198.51.100.7"),
    )
    dns_check_run(actor=SYSTEM, domain=domain, fetch_policy=portal_fetcher())
    view = dns_overview(SYSTEM, "good.test")
    assert view.dmarc_blockers[0].startswith("SPF is wrong")
    with pytest.raises(Conflict, match="SPF is wrong"):
        dmarc_set_stage(actor=SYSTEM, domain=domain, policy="quarantine", pct=50)
