"""Stored verdicts: history of changes, e-mail only on a status change, checks spread by beat."""

import datetime as dt
import time

import pytest
from django.core import mail
from django.utils import timezone

from identity import tasks
from identity.models import DnsCheck, DnsCheckHistory, DomainPosture
from identity.selectors import posture_defaults
from identity.services import dkim_retire, dkim_rotate_start, dns_check_run, posture_update
from identity.tasks import check_due, ensure_postures, first_check_at, rotate_due
from mailboxes.services import domain_create
from nodes.models import NodeChange
from tenants.access import SYSTEM
from tests.dns_server import TSIG_KEY_NAME
from tests.factories import MembershipFactory
from tests.identity.support import MAIL_HOST, fragment_for, lookup_at, portal_fetcher

pytestmark = pytest.mark.django_db


@pytest.fixture
def admins(organisation):
    owner = MembershipFactory(organisation=organisation, role="owner").user
    admin = MembershipFactory(organisation=organisation, role="admin").user
    MembershipFactory(organisation=organisation, role="viewer")
    return sorted([owner.email, admin.email])


def run(domain):
    return {
        r.key: r.status
        for r in dns_check_run(actor=SYSTEM, domain=domain, fetch_policy=portal_fetcher())
    }


@pytest.mark.dns
def test_it_stores_verdicts_with_history_and_mails_admins_only_on_a_status_change(
    dns_world, domain, admins, django_capture_on_commit_callbacks
):
    server = dns_world({"good.test": fragment_for(domain)})
    with django_capture_on_commit_callbacks(execute=True):
        first = run(domain)
    assert set(first.values()) == {"ok"}
    assert mail.outbox == []  # a first verdict is not a change
    history = DnsCheckHistory.objects.filter(domain=domain)
    assert history.count() == len(first)

    with django_capture_on_commit_callbacks(execute=True):
        run(domain)
    assert mail.outbox == [] and history.count() == len(first)  # nothing changed: no new rows

    server.set_zone(
        "good.test", fragment_for(domain).replace(f"MX 10 {MAIL_HOST}.", "MX 10 mx.else.test.")
    )
    with django_capture_on_commit_callbacks(execute=True):
        assert run(domain)["mx"] == "wrong"
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert sorted(message.to) == admins
    assert message.subject == "[Mailhost] DNS of good.test: needs attention"
    assert "MX good.test: ok → wrong. The MX points elsewhere" in message.body
    assert history.count() == len(first) + 1
    mx = DnsCheck.objects.get(domain=domain, key="mx")
    assert mx.found == ["10 mx.else.test."] and mx.changed_at == mx.checked_at

    server.set_zone("good.test", fragment_for(domain))
    with django_capture_on_commit_callbacks(execute=True):
        run(domain)
    assert len(mail.outbox) == 2 and mail.outbox[1].subject.endswith(": fixed")
    assert list(history.filter(key="mx").values_list("status", flat=True)) == ["ok", "wrong", "ok"]


@pytest.mark.dns
def test_it_forgets_the_current_verdict_of_a_record_no_longer_expected(dns_world, domain):
    dns_world({"good.test": fragment_for(domain)})
    run(domain)
    (new,) = dkim_rotate_start(actor=SYSTEM, domain=domain)
    assert run(domain)[f"dkim:{new.selector}"] == "wrong"
    dkim_retire(actor=SYSTEM, domain=domain, selector=new.selector)
    run(domain)
    assert not DnsCheck.objects.filter(key=f"dkim:{new.selector}").exists()
    assert DnsCheckHistory.objects.filter(key=f"dkim:{new.selector}").exists()


def test_it_spreads_first_checks_over_the_interval(mail_settings):
    now = timezone.now()
    mail_settings.MAILHOST_DNS_CHECK_INTERVAL_MINUTES = 360
    offsets = {(first_check_at(f"client{i}.test", now) - now) for i in range(200)}
    assert len(offsets) > 190
    assert all(dt.timedelta(0) <= o < dt.timedelta(minutes=360) for o in offsets)
    assert first_check_at("a.test", now) == first_check_at("a.test", now)


def test_it_gives_domains_without_a_posture_one_with_a_spread_first_check(
    mail_settings, organisation
):
    now = timezone.now()
    for name in ("a.test", "b.test"):
        domain_create(actor=SYSTEM, organisation=organisation, name=name)
    assert ensure_postures(now) == 2
    times = sorted(DomainPosture.objects.values_list("next_check_at", flat=True))
    assert times[0] != times[1] and all(t >= now for t in times)
    assert ensure_postures(now) == 0


def wait_until(predicate, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "the worker did not get there in time"
        time.sleep(0.1)


@pytest.mark.dns
@pytest.mark.django_db(transaction=True)
def test_it_checks_due_domains_through_the_broker_and_claims_them(
    dns_world, mail_settings, organisation, celery_worker_running
):
    due = domain_create(actor=SYSTEM, organisation=organisation, name="due.test")
    later = domain_create(actor=SYSTEM, organisation=organisation, name="later.test")
    dns_world({"due.test": fragment_for(due)})
    now = timezone.now()
    for domain, when in (
        (due, now - dt.timedelta(minutes=1)),
        (later, now + dt.timedelta(hours=1)),
    ):
        DomainPosture.objects.create(
            domain=domain, next_check_at=when, **posture_defaults(domain.name)
        )
    check_due.delay()
    wait_until(lambda: DnsCheck.objects.filter(domain=due, key="mx").exists())
    assert DnsCheck.objects.get(domain=due, key="mx").status == "ok"
    assert not DnsCheck.objects.filter(domain=later).exists()
    # Checked by the worker with the real HTTPS fetcher: mta-sts.due.test → the portal's
    # address (127.0.0.1 here), where nothing listens on 443.
    policy = DnsCheck.objects.get(domain=due, key="mta-sts-policy")
    assert policy.status == "wrong" and "refused" in policy.detail
    assert DomainPosture.objects.get(domain=due).next_check_at > now + dt.timedelta(hours=5)
    assert check_due() == 0  # nothing else is due


@pytest.mark.dns
def test_it_verifies_a_waiting_claim_on_its_periodic_check_and_looks_again_sooner(
    dns_world, mail_settings, organisation
):
    mail_settings.MAILHOST_DNS_CHECK_INTERVAL_MINUTES = 360
    mail_settings.MAILHOST_DOMAIN_VERIFY_INTERVAL_MINUTES = 10
    claim = domain_create(actor=SYSTEM, organisation=organisation, name="newco.net")
    assert not claim.is_verified  # not a special-use name: it waits for its TXT record
    published = fragment_for(claim)
    token_lines = [line for line in published.splitlines() if "_mailhost-verify" in line]
    assert len(token_lines) == 1
    server = dns_world({"newco.net": published.replace(token_lines[0], "")})

    tasks.check_domain(claim.pk)  # the scheduled check, as beat's check_due enqueues it

    claim.refresh_from_db()
    assert not claim.is_verified
    posture = DomainPosture.objects.get(domain=claim)
    assert posture.next_check_at <= timezone.now() + dt.timedelta(minutes=10)

    server.set_zone("newco.net", published)  # the owner publishes the token
    tasks.check_domain(claim.pk)

    claim.refresh_from_db()
    assert claim.is_verified and claim.verification_method == "dns"
    tasks.check_domain(claim.pk)  # the first check of the live domain (its records now count)
    posture.refresh_from_db()
    assert posture.next_check_at > timezone.now() + dt.timedelta(hours=5)  # a live domain's pace


@pytest.mark.dns
@pytest.mark.django_db(transaction=True)
def test_it_rotates_an_old_key_automatically_through_publish_check_and_switch(
    dns_world, mail_settings, organisation, monkeypatch, celery_worker_running
):
    monkeypatch.setattr(tasks, "CHECK_AFTER_PUBLISH_SECONDS", 0)
    mail_settings.MAILHOST_DKIM_ROTATION_DAYS = 90
    domain = domain_create(actor=SYSTEM, organisation=organisation, name="rotate.test")
    server = dns_world({"rotate.test": fragment_for(domain)})
    posture_update(
        actor=SYSTEM,
        domain=domain,
        auto_publish=True,
        publish_server="127.0.0.1",
        publish_port=server.port,
        tsig_key_name=TSIG_KEY_NAME,
        tsig_secret=server.key_secret,
    )
    old = domain.dkim_keys.get()
    domain.dkim_keys.update(activated_at=timezone.now() - dt.timedelta(days=91))
    rotate_due.delay()
    wait_until(lambda: domain.dkim_keys.filter(state="active").exclude(pk=old.pk).exists())
    new = domain.dkim_keys.get(state="active")
    assert domain.dkim_keys.get(pk=old.pk).state == "retiring"
    published = lookup_at(server.address).texts(f"{new.selector}._domainkey.rotate.test", "TXT")
    assert published == [f"v=DKIM1; k=rsa; p={new.public_key}"]
    assert NodeChange.objects.filter(kind="dkim", object_id=domain.pk).count() == 2
