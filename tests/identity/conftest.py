"""Shared fixtures for the DNS-posture tests: the mail host's identity, a domain, DNS worlds.

The "world" is a Knot server serving the domain's zone plus the operator's zone
(provider.test: the mail host and the portal) and both reverse zones of the mail host.
"""

import pytest

from mailboxes.services import domain_create
from tenants.access import SYSTEM
from tests.factories import OrganisationFactory
from tests.identity.support import (
    IPV4,
    IPV6,
    MAIL_HOST,
    PORTAL_HOST,
    provider_records,
    reverse_zones,
)


@pytest.fixture
def mail_settings(settings):
    settings.MAILHOST_HOSTNAME = MAIL_HOST
    settings.MAILHOST_PORTAL_URL = f"https://{PORTAL_HOST}"
    settings.MAILHOST_PUBLIC_IPV4 = [IPV4]
    settings.MAILHOST_PUBLIC_IPV6 = [IPV6]
    # A production box: clients are told the standard ports (whatever the test stack uses).
    settings.MAILHOST_PUBLIC_PORTS = {
        "imaps": 993, "imap": 143, "submissions": 465, "submission": 587, "https": 443
    }
    # Knot answers in well under a millisecond; the margin is for a loaded test machine. Tests
    # of "unknown" shorten these themselves.
    settings.MAILHOST_DNS_TIMEOUT_MS = 1000
    settings.MAILHOST_DNS_LIFETIME_MS = 3000
    settings.MAILHOST_DKIM_SWITCH_DELAY_MINUTES = 0
    settings.MAILHOST_DMARC_RUA = ["dmarc@{domain}"]
    settings.MAILHOST_TLSRPT_RUA = ["mailto:tls@{domain}"]
    # The test suite's Knot runs on loopback, which publishing refuses unless allowed: staff
    # allow it this way in production for an internal primary. Attack tests undo it.
    settings.MAILHOST_DNS_PUBLISH_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    return settings


@pytest.fixture
def organisation(db):
    return OrganisationFactory(slug="acme", name="Acme")


@pytest.fixture
def domain(mail_settings, organisation):
    """A domain created the real way: with its first (active) DKIM key."""
    return domain_create(actor=SYSTEM, organisation=organisation, name="good.test")


@pytest.fixture
def dns_world(knot, mail_settings):
    """Start Knot with the operator's zones plus `zones`; point the resolver settings at it."""

    def start(zones: dict[str, str], broken: list[str] = (), **extra):
        all_zones = {"provider.test": provider_records(), **reverse_zones(**extra), **zones}
        for name in broken:
            all_zones.pop(name, None)
        server = knot(all_zones, broken=broken)
        mail_settings.MAILHOST_DNS_RESOLVERS = [server.address]
        return server

    return start


@pytest.fixture
def celery_worker_running():
    """A real Celery worker (solo pool, in this process) on the real Redis broker."""
    from celery.contrib.testing.worker import start_worker

    from mailhost.celery import app

    app.control.purge()  # nothing left over from another test
    with start_worker(app, perform_ping_check=False, queues=["celery"], pool="solo"):
        yield app
    app.control.purge()
