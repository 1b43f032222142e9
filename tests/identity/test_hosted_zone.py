"""The local-mode hosted zone (what the node's own resolver answers for its domains): rendered
from every live domain's records, with each domain's lines cached under a digest of what they
are rendered from. A changed domain must show at once; the cache must never be needed."""

import shutil
import tempfile
from pathlib import Path

import pytest

from identity.inbound import node_inbound_files
from identity.models import DomainPosture
from identity.selectors import posture_defaults
from mailhost.backend.config import NodeConfig
from mailhost.backend.inbound import HOSTED_ZONE_FILE
from nodes.changes import node_default
from routing.models import Relay
from tests.factories import DomainFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def zone(settings):
    settings.MAILHOST_RESOLVER_MODE = "local"
    state_dir = Path(tempfile.mkdtemp(prefix="mhz", dir="/tmp"))  # short: a node's limit
    config = NodeConfig.from_settings(state_dir=state_dir)

    def render() -> str:
        return node_inbound_files(node_default(), config)[HOSTED_ZONE_FILE].decode()

    yield render
    shutil.rmtree(state_dir, ignore_errors=True)


def test_a_changed_domain_shows_in_the_next_zone(zone):
    domain = DomainFactory(name="hz.test")
    other = DomainFactory(name="hz-other.test", organisation=domain.organisation)
    first = zone()
    assert "p=none" in first and "'hz.test. 300 IN MX" in first
    assert zone() == first  # from the cache: the same lines

    DomainPosture.objects.create(
        domain=domain, **posture_defaults(domain.name) | {"dmarc_policy": "reject"}
    )
    Relay.objects.create(organisation=domain.organisation, domain=other, host="relay.example",
                         spf_include="spf.relay.example")
    second = zone()

    dmarc = [line for line in second.splitlines() if "_dmarc.hz.test." in line]
    assert dmarc and "p=reject" in dmarc[0]
    spf = {name: [line for line in second.splitlines() if f"'{name}. 300 IN TXT" in line
                  and "spf1" in line] for name in ("hz.test", "hz-other.test")}
    assert spf["hz-other.test"] and "include:spf.relay.example" in spf["hz-other.test"][0]
    assert spf["hz.test"] and "include:" not in spf["hz.test"][0]  # the relay is the other's


def test_the_zone_renders_without_redis(zone, settings):
    DomainFactory(name="hz-noredis.test")
    with_cache = zone()
    settings.CACHES = settings.CACHES | {
        "default": settings.CACHES["default"] | {"LOCATION": "redis://127.0.0.1:9/0"}
    }
    assert zone() == with_cache
