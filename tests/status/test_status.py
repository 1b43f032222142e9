"""The status page against the real stack and a real DNS server: a stopped daemon becomes a
problem in one check cycle and alerts once; a DNSBL listing served by the test resolver is
shown with its removal link; a certificate near expiry, a filling disk and an old queue are
problems; every verdict carries its evidence; /health reports the same without names."""

import datetime as dt
import os
import shutil

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from django.core import mail
from django.test import Client
from django.utils import timezone

from identity.models import CheckStatus, DnsCheck
from status import checks
from status.models import State, StatusAlert, StatusCheck
from status.services import status_check_node, status_check_portal
from tests.factories import DomainFactory, MembershipFactory, OrganisationFactory, UserFactory
from tests.identity.conftest import dns_world, mail_settings  # noqa: F401
from tests.identity.support import IPV4, IPV6
from tests.stack import wait_for

NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)


def _state(key: str) -> str:
    return StatusCheck.objects.get(key=key).state


@pytest.mark.stack
@pytest.mark.django_db
def test_a_stopped_dovecot_is_a_problem_in_one_cycle_and_alerts_once(
    mail_stack, stack_node, settings, django_capture_on_commit_callbacks
):
    settings.MAILHOST_STATUS_ALERT_EMAILS = ["ops@provider.test"]
    key = f"node:{stack_node.name}:daemon:dovecot"
    with django_capture_on_commit_callbacks(execute=True):
        assert status_check_node(stack_node) == []  # first verdicts, all ok: nothing to say
    assert _state(key) == State.OK
    assert "Running (pid" in StatusCheck.objects.get(key=key).evidence
    mail_stack.stop_daemon("dovecot")
    try:
        with django_capture_on_commit_callbacks(execute=True):
            [alert] = status_check_node(stack_node)
        assert (alert.key, alert.previous, alert.state) == (key, State.OK, State.PROBLEM)
        with django_capture_on_commit_callbacks(execute=True):
            assert status_check_node(stack_node) == []  # still down: no second alert
        assert StatusAlert.objects.filter(key=key).count() == 1
        [message] = mail.outbox
        assert "dovecot is problem" in message.subject and message.to == ["ops@provider.test"]

        staff = Client()
        staff.force_login(UserFactory(is_superuser=True))
        page = staff.get("/mail-admin/status/").content.decode()
        assert f'data-check="{key}"' in page and "Not running." in page
        health = Client().get("/api/v1/health").json()["checks"]
        assert health["problem"] >= 1 and "daemons" in health["problem_groups"]
        assert "dovecot" not in str(health)  # public: kinds of check, never names

        member = Client()
        member.force_login(MembershipFactory(organisation=OrganisationFactory()).user)
        assert key not in member.get("/mail-admin/status/").content.decode()
    finally:
        mail_stack.start()
    wait_for(lambda: mail_stack.pid("dovecot"))
    [back] = status_check_node(stack_node)
    assert (back.previous, back.state) == (State.PROBLEM, State.OK)


@pytest.mark.stack
@pytest.mark.django_db
@pytest.mark.parametrize("daemon", ["dav", "webmail", "mta-sts"])
def test_a_stopped_dav_webmail_or_mta_sts_daemon_is_a_problem_on_the_page_and_health(
    mail_stack, stack_node, daemon
):
    """Radicale, Roundcube's php-fpm and the MTA-STS resolver are watched like the others:
    stopping the real process turns its check into a problem the staff page and /health show."""
    key = f"node:{stack_node.name}:daemon:{daemon}"
    status_check_node(stack_node)
    assert _state(key) == State.OK
    mail_stack.stop_daemon(daemon)
    try:
        assert mail_stack.pid(daemon) is None
        alerts = status_check_node(stack_node)
        assert [(a.key, a.previous, a.state) for a in alerts if a.key == key] == [
            (key, State.OK, State.PROBLEM)]
        assert StatusCheck.objects.get(key=key).evidence == "Not running."
        staff = Client()
        staff.force_login(UserFactory(is_superuser=True))
        page = staff.get("/mail-admin/status/").content.decode()
        assert f'data-check="{key}"' in page
        health = Client().get("/api/v1/health").json()["checks"]
        assert "daemons" in health["problem_groups"]
    finally:
        mail_stack.start()
    wait_for(lambda: mail_stack.pid(daemon))
    status_check_node(stack_node)
    assert _state(key) == State.OK
    assert "daemons" not in Client().get("/api/v1/health").json()["checks"]["problem_groups"]


@pytest.mark.dns
@pytest.mark.django_db
def test_a_dnsbl_listing_served_by_the_resolver_is_shown_with_its_removal_link(
    dns_world, settings  # noqa: F811
):
    listed = ".".join(reversed(IPV4.split("."))) + " IN A 127.0.0.2\n"
    reason = ".".join(reversed(IPV4.split("."))) + ' IN TXT "Listed: spam seen from this IP"\n'
    dns_world({"dnsbl.test": listed + reason, "clean.test": ""})
    settings.MAILHOST_DNSBL_ZONES = ["dnsbl.test|https://dnsbl.test/remove?ip={ip}", "clean.test"]
    status_check_portal()
    check = StatusCheck.objects.get(key=f"dnsbl:{IPV4}:dnsbl.test")
    assert check.state == State.PROBLEM
    assert "127.0.0.2" in check.evidence and "spam seen from this IP" in check.evidence
    assert check.link == f"https://dnsbl.test/remove?ip={IPV4}"
    assert _state(f"dnsbl:{IPV6}:dnsbl.test") == State.OK
    assert _state(f"dnsbl:{IPV4}:clean.test") == State.OK
    # The mail host's own DNS: A, AAAA and forward-confirmed PTRs.
    for key in ("dns:host:A", "dns:host:AAAA", f"dns:ptr:{IPV4}", f"dns:ptr:{IPV6}"):
        assert _state(key) == State.OK, StatusCheck.objects.get(key=key).evidence
    assert StatusAlert.objects.filter(key=check.key).count() == 1

    # Cached: the next cycle within MAILHOST_DNSBL_CACHE_SECONDS does not ask again.
    checked_at = check.checked_at
    status_check_portal()
    check.refresh_from_db()
    assert check.checked_at == checked_at and check.state == State.PROBLEM

    staff = Client()
    staff.force_login(UserFactory(is_superuser=True))
    page = staff.get("/mail-admin/status/").content.decode()
    assert f"https://dnsbl.test/remove?ip={IPV4}" in page


@pytest.mark.dns
@pytest.mark.django_db
def test_a_dnsbl_that_cannot_be_asked_is_unknown_not_ok(dns_world, settings):  # noqa: F811
    dns_world({}, broken=["dnsbl.test"])
    settings.MAILHOST_DNSBL_ZONES = ["dnsbl.test"]
    status_check_portal()
    assert _state(f"dnsbl:{IPV4}:dnsbl.test") == State.UNKNOWN


@pytest.mark.django_db
def test_each_domain_s_verdicts_are_shown_to_its_own_organisation_only(settings):
    org, other = OrganisationFactory(), OrganisationFactory()
    domain = DomainFactory(organisation=org, name="verdicts.test")
    DomainFactory(organisation=other, name="unchecked.test")
    for key, status in (("mx", CheckStatus.WRONG), ("spf", CheckStatus.OK)):
        DnsCheck.objects.create(domain=domain, key=key, name=domain.name, rtype="MX",
                                status=status, detail="points elsewhere" * (key == "mx"),
                                checked_at=timezone.now(), changed_at=timezone.now())
    settings.MAILHOST_DNSBL_ZONES = []
    settings.MAILHOST_PUBLIC_IPV4 = settings.MAILHOST_PUBLIC_IPV6 = []
    status_check_portal()
    check = StatusCheck.objects.get(key="domain:verdicts.test:records")
    assert (check.state, check.organisation_id) == (State.PROBLEM, org.pk)
    assert "mx: points elsewhere" in check.evidence
    assert _state("domain:unchecked.test:records") == State.UNKNOWN

    member = Client()
    member.force_login(MembershipFactory(organisation=org).user)
    page = member.get("/mail-admin/status/").content.decode()
    assert "verdicts.test" in page and "unchecked.test" not in page


def _certificate(path, days: int) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mail.provider.test")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1)
            .not_valid_before(NOW - dt.timedelta(days=30))
            .not_valid_after(NOW + dt.timedelta(days=days))
            .sign(key, hashes.SHA256()))
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def test_a_certificate_near_expiry_is_a_problem(tmp_path, settings):
    settings.MAILHOST_STATUS_CERT_WARN_DAYS = 14
    _certificate(tmp_path / "near.pem", 5)
    _certificate(tmp_path / "far.pem", 80)
    (tmp_path / "bad.pem").write_text("not a certificate")
    near = checks.certificate_result("k", "t", tmp_path / "near.pem", now=NOW)
    assert near.state == State.PROBLEM and "in 5 days" in near.evidence
    assert checks.certificate_result("k", "t", tmp_path / "far.pem", now=NOW).state == State.OK
    assert checks.certificate_result("k", "t", tmp_path / "bad.pem", now=NOW).state == (
        State.UNKNOWN)
    expired = checks.certificate_result("k", "t", tmp_path / "near.pem",
                                        now=NOW + dt.timedelta(days=6))
    assert expired.state == State.PROBLEM and "expired" in expired.evidence


def test_a_disk_filling_within_the_forecast_is_a_problem_before_it_is_full(tmp_path, settings):
    settings.MAILHOST_STATUS_DISK_PERCENT = 100  # only the forecast can make it a problem
    settings.MAILHOST_STATUS_DISK_FORECAST_DAYS = 7
    first = checks.disk_result("k", "t", tmp_path, {}, now=NOW)
    assert first.state == State.OK and first.data["days_left"] is None  # one sample: no trend
    [[_, used]] = first.data["samples"]
    free = shutil.disk_usage(tmp_path).free
    # Two hours ago the volume had free/12 less in use: it fills in about a day.
    earlier = {"samples": [[int((NOW - dt.timedelta(hours=2)).timestamp()), used - free // 12]]}
    filling = checks.disk_result("k", "t", tmp_path, earlier, now=NOW)
    assert filling.state == State.PROBLEM, filling.evidence
    assert "full in about" in filling.evidence and filling.data["days_left"] < 2
    steady = {"samples": [[int((NOW - dt.timedelta(hours=2)).timestamp()), used]]}
    assert checks.disk_result("k", "t", tmp_path, steady, now=NOW).state == State.OK


def test_an_old_message_in_the_queue_is_a_problem(tmp_path, settings):
    settings.MAILHOST_STATUS_QUEUE_MAX_AGE_HOURS = 24
    assert checks.queue_result("n", "n", tmp_path, now=NOW).evidence == "Empty."
    (tmp_path / "deferred" / "A").mkdir(parents=True)
    old = tmp_path / "deferred" / "A" / "ABC123"
    old.write_text("x")
    stamp = (NOW - dt.timedelta(days=2)).timestamp()
    os.utime(old, (stamp, stamp))
    result = checks.queue_result("n", "n", tmp_path, now=NOW)
    assert result.state == State.PROBLEM and result.evidence == (
        "1 message; the oldest has waited 2 days.")
    assert result.data == {"size": 1, "oldest_seconds": 2 * 86400, "queues": {
        "maildrop": 0, "incoming": 0, "active": 0, "deferred": 1, "hold": 0}}


def test_the_disk_check_names_the_part_that_grows_most(tmp_path):
    (tmp_path / "log").mkdir()
    (tmp_path / "spool").mkdir()
    parts = {"log": tmp_path / "log", "spool": tmp_path / "spool"}
    first = checks.disk_result("k", "t", tmp_path, {}, now=NOW, parts=parts)
    assert "growing most" not in first.evidence and len(first.data["parts"]) == 1
    (tmp_path / "log" / "postfix.log").write_bytes(os.urandom(256 * 1024))
    (tmp_path / "spool" / "q").write_bytes(b"x")
    soon = checks.disk_result("k", "t", tmp_path, first.data, now=NOW + dt.timedelta(minutes=5),
                              parts=parts)
    assert len(soon.data["parts"]) == 1  # measured at most hourly
    later = checks.disk_result("k", "t", tmp_path, soon.data, now=NOW + dt.timedelta(hours=2),
                               parts=parts)
    assert "growing most: log (+" in later.evidence and "in 2 hours" in later.evidence
