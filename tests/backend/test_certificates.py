"""Certificates from a real ACME server (pebble, on loopback) through the real edge, and the
watcher that puts a renewal into Postfix, Dovecot and nginx without anyone restarting them:
what a new TLS client sees on submission, SMTP, IMAPS and HTTPS is the proof."""

import datetime as dt
import io
import shutil
import smtplib
import socket
import ssl
import tempfile
from pathlib import Path

import pytest
from cryptography import x509
from django.core.management import call_command

from mailboxes import services
from mailhost.backend import certificates
from mailhost.backend.certificates import AcmeSettings, domain_spec, mail_host_spec
from mailhost.backend.edge import EDGE_SITES
from mailhost.backend.stack import Stack
from nodes.certificates import certificate_statuses, renew_node_certificates
from nodes.models import MailNode
from nodes.reconcile import apply_edge_sites, reconcile_full
from tenants.access import SYSTEM
from tests.acme_server import Pebble, running_pebble
from tests.factories import OrganisationFactory
from tests.stack import HOSTNAME, unique_domain, wait_for

pytestmark = [pytest.mark.stack, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def pebble(mail_stack):
    state = Path(tempfile.mkdtemp(prefix="mh-pebble-"))
    try:
        with running_pebble(http_port=mail_stack.cfg.ports["http"], state=state) as ca:
            yield ca
    finally:
        shutil.rmtree(state, ignore_errors=True)


@pytest.fixture
def node_tls(mail_stack):
    """The shared stack's own certificate and ACME state, put back afterwards (the watcher then
    reloads the daemons onto the original pair again)."""
    saved = {rel: mail_stack.cfg.path(rel).read_bytes() for rel in ("tls/cert.pem", "tls/key.pem")}
    yield
    shutil.rmtree(mail_stack.cfg.path("acme/live"), ignore_errors=True)
    for rel in (certificates.ACME_STATE, certificates.ACME_ACCOUNT):
        mail_stack.cfg.path(rel).unlink(missing_ok=True)
    mail_stack.cfg.path("tls/key.pem").write_bytes(saved["tls/key.pem"])
    mail_stack.cfg.path("tls/cert.pem").write_bytes(saved["tls/cert.pem"])
    for daemon in ("postfix", "dovecot", "edge"):  # cleanup: no need to wait for the watcher
        mail_stack.reload(daemon)
    original = x509.load_pem_x509_certificate(saved["tls/cert.pem"]).serial_number
    insecure = ssl.create_default_context()
    insecure.check_hostname, insecure.verify_mode = False, ssl.CERT_NONE
    wait_for(lambda: sees(mail_stack, insecure, original), timeout=30)


def acme(ca: Pebble, **changes) -> AcmeSettings:
    return AcmeSettings(directory_url=ca.directory_url, ca_bundle=str(ca.api_ca_file), **changes)


def trusting(ca: Pebble, name: str) -> ssl.SSLContext:
    """A client that trusts only pebble's roots and checks the name: a real verification."""
    context = ssl.create_default_context(cadata=ca.issuing_roots().decode())
    context.check_hostname = True
    return context


def presented(stack: Stack, port_name: str, context: ssl.SSLContext, name: str) -> int:
    """The serial of the certificate a NEW client sees on a port (verified, else it raises)."""
    address = stack.address(port_name)
    if port_name in ("smtp", "submission"):
        with smtplib.SMTP(*address, timeout=10) as client:
            client._host = name  # STARTTLS checks the name a client dialled, not 127.0.0.1
            client.starttls(context=context)
            return x509.load_der_x509_certificate(client.sock.getpeercert(True)).serial_number
    with socket.create_connection(address, timeout=10) as raw, \
            context.wrap_socket(raw, server_hostname=name) as sock:
        return x509.load_der_x509_certificate(sock.getpeercert(True)).serial_number


def sees(stack: Stack, context: ssl.SSLContext, serial: int, name: str = HOSTNAME) -> bool:
    try:
        return all(presented(stack, port, context, name) == serial
                   for port in ("smtp", "submission", "submissions", "imaps", "https"))
    except (ssl.SSLError, OSError, smtplib.SMTPException):
        return False  # still the previous certificate somewhere (verification fails)


def test_it_issues_renews_and_revokes_the_mail_host_certificate(mail_stack, pebble, node_tls):
    state = mail_stack.cfg.state_dir
    spec = mail_host_spec(HOSTNAME)
    masters = dict(mail_stack.status())

    first = certificates.renew_due(acme(pebble), state, [spec])
    assert first.issued == [certificates.MAIL_HOST] and not first.failed
    issued = certificates.read_cert(state / spec.cert)
    assert issued.names == (HOSTNAME,) and not issued.self_signed
    context = trusting(pebble, HOSTNAME)
    # Nobody restarts anything: the watcher reloads Postfix, Dovecot and the edge.
    wait_for(lambda: sees(mail_stack, context, issued.serial), timeout=30)

    again = certificates.renew_due(acme(pebble), state, [spec])
    assert again.issued == []  # valid for years: not due

    # Renewal, forced: "due" when it expires within more than its whole validity.
    renewed = certificates.renew_due(acme(pebble, renew_before_days=20 * 365), state, [spec])
    assert renewed.issued == [certificates.MAIL_HOST]
    second = certificates.read_cert(state / spec.cert)
    assert second.serial != issued.serial
    wait_for(lambda: sees(mail_stack, context, second.serial), timeout=30)
    assert mail_stack.status() == masters  # reloaded in place: no daemon was restarted

    certificates.revoke(acme(pebble), state, spec)
    assert pebble.status(second.serial) == "Revoked"
    assert pebble.status(issued.serial) == "Valid"


def test_it_gives_each_live_domain_a_certificate_for_its_service_hosts(
    mail_stack, stack_node, pebble, node_tls, settings
):
    settings.MAILHOST_ACME_DIRECTORY_URL = pebble.directory_url
    settings.MAILHOST_ACME_CA_BUNDLE = str(pebble.api_ca_file)
    settings.MAILHOST_HOSTNAME = HOSTNAME
    node = MailNode.objects.get()
    domain = services.domain_create(actor=SYSTEM, organisation=OrganisationFactory(),
                                    name=unique_domain("acme"))
    reconcile_full(node)

    try:
        _check_domain_certificates(mail_stack, node, domain, pebble)
    finally:  # the shared edge must not name certificates that the fixture removes
        shutil.rmtree(mail_stack.cfg.path("acme/live"), ignore_errors=True)
        apply_edge_sites(node)


def _check_domain_certificates(mail_stack, node, domain, pebble):
    result = renew_node_certificates(node)
    assert set(result.issued) >= {certificates.MAIL_HOST, domain.name}
    spec = domain_spec(domain.name)
    assert f"ssl_certificate {mail_stack.cfg.path(spec.cert)};" in mail_stack.cfg.path(
        EDGE_SITES).read_text()
    info = certificates.read_cert(mail_stack.cfg.state_dir / spec.cert)
    assert set(info.names) == {f"mta-sts.{domain.name}", f"autoconfig.{domain.name}",
                               f"autodiscover.{domain.name}"}  # one order, three names
    for name in info.names:
        context = trusting(pebble, name)
        wait_for(lambda name=name, context=context:
                 _https_serial(mail_stack, context, name) == info.serial, timeout=30)

    statuses = {s.name: s for s in certificate_statuses(node)}
    assert statuses[domain.name].days_left > 300 and not statuses[domain.name].alert


def _https_serial(stack: Stack, context: ssl.SSLContext, name: str) -> int | None:
    try:
        with socket.create_connection(stack.address("https"), timeout=10) as raw, \
                context.wrap_socket(raw, server_hostname=name) as sock:
            return x509.load_der_x509_certificate(sock.getpeercert(True)).serial_number
    except (ssl.SSLError, OSError):
        return None


def test_it_backs_off_after_a_failure_and_alerts_staff_near_expiry(mail_stack, stack_node,
                                                                      node_tls, settings):
    """A CA that is unreachable: the failure is recorded, the next run waits, and a failing
    certificate close to expiry is flagged."""
    state = mail_stack.cfg.state_dir
    spec = mail_host_spec(HOSTNAME)
    dead = AcmeSettings(directory_url="https://127.0.0.1:9/dir")
    now = dt.datetime.now(dt.UTC)
    first = certificates.renew_due(dead, state, [spec], now=now)
    assert list(first.failed) == [certificates.MAIL_HOST]
    soon = certificates.renew_due(dead, state, [spec], now=now + dt.timedelta(minutes=1))
    assert soon.deferred == [certificates.MAIL_HOST] and not soon.failed
    later = certificates.renew_due(dead, state, [spec], now=now + dt.timedelta(minutes=6))
    assert list(later.failed) == [certificates.MAIL_HOST]
    record = certificates.state_load(state)[certificates.MAIL_HOST]
    assert record["failures"] == 2  # the wait doubled: 10 minutes now
    assert dt.datetime.fromisoformat(record["next_attempt"]) == now + dt.timedelta(minutes=16)


def test_it_shows_expiries_on_health_and_the_dashboard_and_alerts_staff(
    mail_stack, stack_node, node_tls, settings, mailoutbox
):
    """Renewal keeps failing and the certificate expires in 10 days: /health warns, the
    dashboard says so, staff get one e-mail a day."""
    from django.core.cache import cache
    from django.urls import reverse

    from nodes.certificates import alert_staff
    from tests.factories import MembershipFactory, UserFactory
    from tests.pages.conftest import client_for

    settings.MAILHOST_HOSTNAME = HOSTNAME
    state = mail_stack.cfg.state_dir
    spec = mail_host_spec(HOSTNAME)
    info = certificates.read_cert(state / spec.cert)
    dead = AcmeSettings(directory_url="https://127.0.0.1:9/dir")
    near = info.not_after - dt.timedelta(days=10)
    certificates.renew_due(dead, state, [spec], now=near)

    health = client_for(UserFactory()).get("/api/v1/health").json()
    node = next(n for n in health["nodes"] if n["name"] == stack_node.name)
    mail_host = next(c for c in node["certificates"] if c["name"] == certificates.MAIL_HOST)
    assert mail_host["renewal_failing"] and mail_host["days_left"] > 300  # not near *today*

    out = io.StringIO()
    call_command("certificates", "status", stdout=out)
    assert f"{HOSTNAME}: {info.not_after:%Y-%m-%d}" in out.getvalue()
    assert "renewal failing (1)" in out.getvalue()

    status = next(s for s in certificate_statuses(stack_node, now=near)
                  if s.name == certificates.MAIL_HOST)
    assert status.alert and status.days_left == 10

    staff = UserFactory(is_superuser=True, email="ops@operators.test")
    staff.save()
    cache.delete(f"cert-alert:{stack_node.pk}:{certificates.MAIL_HOST}")
    assert alert_staff(stack_node, now=near) == [certificates.MAIL_HOST]
    assert alert_staff(stack_node, now=near) == []  # once a day
    assert len(mailoutbox) == 1 and mailoutbox[0].to == ["ops@operators.test"]
    assert HOSTNAME in mailoutbox[0].body and "Connection refused" in mailoutbox[0].body

    membership = MembershipFactory(role="owner")
    services.domain_create(actor=SYSTEM, organisation=membership.organisation,
                           name=unique_domain("dash"))
    page = client_for(membership.user).get(
        reverse("mailboxes:dashboard", args=[membership.organisation.slug]))
    assert page.status_code == 200
    html = page.content.decode()
    assert HOSTNAME in html and info.not_after.date().isoformat() in html
    assert "Failing (1)" in html


def test_an_operator_provided_certificate_reaches_every_daemon_by_itself(mail_stack, node_tls):
    """No ACME: the operator copies a new pair in (key first); new clients see it."""
    from mailhost.backend.tls import self_signed

    key_pem, cert_pem = self_signed(HOSTNAME)
    mail_stack.cfg.path("tls/key.pem").write_bytes(key_pem)
    mail_stack.cfg.path("tls/cert.pem").write_bytes(cert_pem)
    serial = x509.load_pem_x509_certificate(cert_pem).serial_number
    context = ssl.create_default_context(cadata=cert_pem.decode())  # trust exactly this one
    wait_for(lambda: sees(mail_stack, context, serial), timeout=30)
