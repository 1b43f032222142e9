"""Every report address the portal publishes in DNS must be deliverable (issue 11): the
defaults (system check identity.E009) and what an organisation types for its own domains."""

import pytest
from django.core.checks import run_checks

from identity.selectors import posture_of
from identity.services import posture_update
from mailboxes.services import alias_create, mailbox_create
from mailhost.errors import Invalid
from tenants.access import SYSTEM
from tests.factories import DomainFactory

pytestmark = pytest.mark.django_db


def check_ids(prefix: str, **tags) -> set[str]:
    return {m.id for m in run_checks(**tags) if m.id.startswith(prefix)}


@pytest.mark.parametrize(
    ("setting", "value", "refused"),
    [
        ("MAILHOST_DMARC_RUA", ["mailto:dmarc@{domain}"], True),
        ("MAILHOST_TLSRPT_RUA", ["mailto:tls-reports@{domain}"], True),
        ("MAILHOST_DMARC_RUA", ["mailto:postmaster+dmarc@{domain}"], False),
        ("MAILHOST_TLSRPT_RUA", ["mailto:abuse@{domain}", "https://r.example/tls"], False),
        ("MAILHOST_DMARC_RUA", ["mailto:dmarc@reports.provider.example"], False),  # elsewhere
    ],
)
def test_it_refuses_a_default_that_would_bounce_at_every_new_domain(settings, setting, value,
                                                                    refused):
    setattr(settings, setting, value)
    assert ("identity.E009" in check_ids("identity.")) is refused


def refusal(domain, **changes) -> str | None:
    try:
        posture_update(actor=SYSTEM, domain=domain, **changes)
    except Invalid as exc:
        assert exc.code == "report_address_not_deliverable", exc.detail
        return exc.detail
    return None


def test_it_refuses_a_report_address_of_its_own_domain_that_would_bounce(domain):
    assert "reports@good.test would bounce" in refusal(domain, dmarc_rua=["reports@good.test"])
    assert refusal(domain, dmarc_ruf=["forensic@good.test"])
    assert refusal(domain, tlsrpt_rua=["mailto:tls@good.test"])
    assert "mailto:reports@good.test" not in posture_of(domain).dmarc_rua  # nothing written

    mailbox_create(actor=SYSTEM, domain=domain, local_part="reports", password="report pass 1")
    alias_create(actor=SYSTEM, domain=domain, local_part="tls", destinations=["x@else.test"])
    assert refusal(domain, dmarc_rua=["reports+agg@good.test"], tlsrpt_rua=["tls@good.test"]) \
        is None
    assert refusal(domain, dmarc_ruf=["postmaster@good.test"]) is None  # a role address


def test_it_does_not_check_or_reveal_other_domains(domain):
    theirs = DomainFactory(name="theirs.test")  # another organisation's
    assert refusal(domain, dmarc_rua=["nobody@theirs.test", "dmarc@reports.example"]) is None
    assert theirs.mailboxes.count() == 0


def test_it_takes_any_address_once_the_domain_has_a_catch_all(domain):
    alias_create(actor=SYSTEM, domain=domain, local_part="", destinations=["x@else.test"])
    assert refusal(domain, dmarc_rua=["anything@good.test"]) is None


@pytest.mark.parametrize(
    ("value", "check_id", "deploy"),
    [
        ("x'y@operator.test", "mailboxes.E001", False),
        ("desk@@operator.test", "mailboxes.E001", False),
        ("postmaster@operator.test", "mailboxes.W002", False),
        ("", "mailboxes.W001", True),  # production checklist only (`check --deploy`)
    ],
)
def test_it_checks_the_operator_mailbox(settings, value, check_id, deploy):
    settings.MAILHOST_OPERATOR_MAILBOX = value
    assert check_id in check_ids("mailboxes.", include_deployment_checks=True)
    assert (check_id in check_ids("mailboxes.")) is not deploy
    settings.MAILHOST_OPERATOR_MAILBOX = "desk@operator.test"
    assert not check_ids("mailboxes.", include_deployment_checks=True)
