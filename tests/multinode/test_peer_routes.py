"""What each node renders for the other nodes' domains: only live domains of nodes with an
address, never its own, in the full pass and after a peer change (no stack: rendering only)."""

import pytest

from mailboxes.models import DomainStatus
from mailhost.backend.config import NodeConfig
from mailhost.backend.peers import PEER_FILTER, PEER_TRANSPORT
from nodes.changes import node_default
from nodes.models import MailNode, NodeChange
from nodes.reconcile import plan_full, plan_incremental
from tests.factories import DomainFactory

pytestmark = pytest.mark.django_db


def transport(plan) -> str:
    return plan.files[PEER_TRANSPORT].data.decode()


def route(plan) -> str:
    """Where the forwarding listener sends each domain (mailhost/backend/peers.py)."""
    return plan.files[PEER_FILTER].data.decode()


def routed(plan) -> set[str]:
    """The domains the table routes (its first column)."""
    return {line.split()[0] for line in transport(plan).splitlines() if not line.startswith("#")}


@pytest.fixture
def nodes(db):
    local = node_default()
    # Never started: only their rendered files are looked at (short paths, as NodeConfig wants).
    b = MailNode.objects.create(name="node-b", state_dir="/tmp/mh-never-b", smtp_host="10.0.0.2",
                                smtp_port=25)
    c = MailNode.objects.create(name="node-c", state_dir="/tmp/mh-never-c")  # no address
    return local, b, c


def test_a_node_routes_the_other_nodes_live_domains_to_them_and_keeps_its_own(nodes):
    local, b, c = nodes
    DomainFactory(name="here.test", node=local)
    DomainFactory(name="there.test", node=b)
    DomainFactory(name="off.test", node=b, status=DomainStatus.DISABLED)
    DomainFactory(name="claimed.test", node=b, verified_at=None)
    DomainFactory(name="unaddressed.test", node=c)
    config = NodeConfig.from_settings(local.state_dir)
    plan = plan_full(local, config)
    assert f"there.test mailhost-forward:[127.0.0.1]:{config.ports['forward']}\n" in transport(plan)
    assert "there.test FILTER smtp:[10.0.0.2]:25\n" in route(plan)
    assert routed(plan) == {"there.test"}  # not its own, disabled, unverified, unaddressed
    # Node B routes nothing to itself, nor to the default node while that has no address.
    assert routed(plan_full(b, NodeConfig.from_settings(b.state_dir))) == set()


def test_a_peer_change_re_renders_the_table_alone(nodes):
    local, b, _ = nodes
    DomainFactory(name="there.test", node=b)
    config = NodeConfig.from_settings(local.state_dir)
    plan = plan_incremental(local, config, [(NodeChange.Kind.PEERS, b.pk)])
    assert "there.test FILTER smtp:[10.0.0.2]:25\n" in route(plan)
    assert plan.file_scope == {PEER_TRANSPORT, PEER_FILTER}
    assert not any(plan.rows.values())
