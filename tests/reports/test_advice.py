"""The DMARC advice reads the reports: clean data recommends the next stage; a failing sender
that looks legitimate stops it (advice, page and the stage change alike); forgers do not."""

import io
import time

import pytest
from django.utils import timezone

from identity.models import DnsCheck
from identity.selectors import dns_overview
from identity.services import dmarc_set_stage
from mailboxes.services import domain_create
from mailhost.errors import Conflict
from reports.figures import dmarc_advice, dmarc_figures
from reports.services import report_submit
from tenants.access import SYSTEM
from tests.factories import OrganisationFactory
from tests.reports.corpus import aggregate

pytestmark = pytest.mark.django_db

OURS = ("192.0.2.25", 12_000, "pass", "pass")
ESP = "203.0.113.50"  # a newsletter service: authenticates as itself, not aligned
FORGER = "198.51.100.66"  # nothing passes


@pytest.fixture
def domain(settings):
    settings.MAILHOST_PUBLIC_IPV4 = ["192.0.2.25"]
    domain = domain_create(actor=SYSTEM, organisation=OrganisationFactory(), name="acme.test")
    now = timezone.now()
    for key in ["spf", *(f"dkim:{k.selector}" for k in domain.dkim_keys.all())]:
        DnsCheck.objects.create(domain=domain, key=key, name=key, rtype="TXT", status="ok",
                                checked_at=now, changed_at=now)
    return domain


def report(domain, rows, report_id: str, *, spf_domain: str | None = None) -> None:
    data = aggregate(domain=domain.name, report_id=report_id, rows=rows,
                     begin=int(time.time()) - 86400)
    if spf_domain:  # the unaligned sender's SPF passes for its own bounce domain
        data = data.replace(f"<spf><domain>{domain.name}</domain><result>fail".encode(),
                            f"<spf><domain>{spf_domain}</domain><result>pass".encode())
    (result,) = report_submit(actor=SYSTEM, stream=io.BytesIO(data), source="mail")
    assert result.outcome == "accepted", result.reason


def test_clean_reports_recommend_the_next_stage(domain):
    report(domain, [OURS, ("192.0.2.26", 400, "pass", "fail")], "clean-1")
    advice = dmarc_advice(domain)
    assert advice.blockers == []
    assert advice.evidence == ("100.0 % of 12,400 messages aligned over 14 days from "
                               "2 known sources.")
    view = dns_overview(SYSTEM, domain.name)
    assert view.dmarc_next == ("quarantine", 25) and view.dmarc_blockers == []
    dmarc_set_stage(actor=SYSTEM, domain=domain, policy="quarantine", pct=25)


def test_a_failing_legitimate_looking_source_stops_the_advice(domain):
    report(domain, [OURS], "ours-1")
    report(domain, [(ESP, 300, "fail", "fail")], "esp-1", spf_domain="bounces.esp.example")
    figures = dmarc_figures(domain)
    assert [s.ip for s in figures.with_status("legitimate")] == [ESP]
    assert figures.with_status("legitimate")[0].authenticated == 300
    # SPF passed for the ESP's own bounce domain: authenticated, not aligned.
    advice = dmarc_advice(domain)
    assert len(advice.blockers) == 1
    assert advice.blockers[0].startswith(f"{ESP} sent 300 messages as acme.test that failed "
                                         "DMARC although it authenticates")
    view = dns_overview(SYSTEM, domain.name)
    assert view.dmarc_blockers == advice.blockers
    with pytest.raises(Conflict, match=ESP):
        dmarc_set_stage(actor=SYSTEM, domain=domain, policy="quarantine", pct=25)


def test_our_own_host_failing_stops_it_too(domain):
    report(domain, [("192.0.2.25", 50, "fail", "fail")], "ours-failing")
    assert "is this mail host" in dmarc_advice(domain).blockers[0]


def test_an_unauthenticated_source_is_named_but_does_not_stop_it(domain):
    report(domain, [OURS, (FORGER, 40, "fail", "fail")], "forged-1")
    advice = dmarc_advice(domain)
    assert advice.blockers == []
    assert advice.evidence == (
        "99.7 % of 12,040 messages aligned over 14 days from 1 known source; "
        f"1 unauthenticated source ({FORGER}, 40 messages) fails: forgers or forwarders, which "
        "an enforcing policy stops.")
    dmarc_set_stage(actor=SYSTEM, domain=domain, policy="quarantine", pct=25)


def test_without_reports_it_says_so_and_keeps_the_dns_gate_only(domain):
    advice = dmarc_advice(domain)
    assert advice.blockers == [] and "No DMARC reports" in advice.evidence


def test_old_reports_fall_out_of_the_window(domain):
    report(domain, [(ESP, 300, "fail", "fail")], "esp-old", spf_domain="esp.example")
    later = timezone.now() + timezone.timedelta(days=20)
    assert dmarc_advice(domain, now=later).blockers == []
