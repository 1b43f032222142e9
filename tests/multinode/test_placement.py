"""Placement of a new domain on a mail node: the staff's choice (API, page, command) or the
least-loaded node; operators never choose. And the other nodes hear of a node's domains."""

import pytest
from django.core.management import CommandError, call_command
from django.db import transaction

from mailboxes import services
from mailboxes.models import Domain
from mailhost.backend.peers import (
    PEER_FILTER,
    PEER_TRANSPORT,
    PeerRoute,
    UnsafePeer,
    render_peer_transport,
)
from mailhost.errors import Forbidden, Invalid
from nodes.changes import node_default
from nodes.models import MailNode, NodeChange
from tenants.access import SYSTEM, Actor
from tests.api.conftest import ApiClient, make_token
from tests.api.test_domains import staff_api
from tests.factories import (
    DomainFactory,
    MailboxFactory,
    MembershipFactory,
    OrganisationFactory,
    UserFactory,
)
from tests.pages.conftest import client_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def nodes(db):
    """The default node and a second one (never started: placement only looks at rows)."""
    return node_default(), MailNode.objects.create(name="node-b", state_dir="/tmp/mh-never-b")


def test_it_places_a_new_domain_on_the_node_with_the_fewest_mailboxes(nodes):
    local, node_b = nodes
    org = OrganisationFactory()
    busy = DomainFactory(organisation=org, node=local)
    MailboxFactory(domain=busy)
    DomainFactory(organisation=org, node=node_b)
    DomainFactory(organisation=org, node=node_b)  # more domains, fewer mailboxes: still B
    domain = services.domain_create(actor=SYSTEM, organisation=org, name="placed.test")
    assert domain.node == node_b


def test_it_breaks_a_mailbox_tie_by_domains_then_the_default_node(nodes):
    local, node_b = nodes
    org = OrganisationFactory()
    first = services.domain_create(actor=SYSTEM, organisation=org, name="first.test")
    assert first.node == local  # all equal: the install's default node
    second = services.domain_create(actor=SYSTEM, organisation=org, name="second.test")
    assert second.node == node_b  # fewer domains


def test_it_lets_staff_choose_the_node(nodes):
    _, node_b = nodes
    org = OrganisationFactory()
    MailboxFactory(domain=DomainFactory(organisation=org, node=node_b))  # B is the busier
    domain = services.domain_create(actor=SYSTEM, organisation=org, name="chosen.test",
                                    node="node-b")
    assert domain.node == node_b


def test_an_operator_cannot_choose_the_node_and_nothing_is_written(nodes):
    org = OrganisationFactory()
    owner = UserFactory()
    owner.save()
    MembershipFactory(organisation=org, user=owner, role="owner")
    actor = Actor(user=owner)
    with pytest.raises(Forbidden, match="staff choose the node"):
        services.domain_create(actor=actor, organisation=org, name="mine.test", node="node-b")
    assert not Domain.objects.filter(name="mine.test").exists()


def test_an_unknown_node_is_refused_clearly(nodes):
    org = OrganisationFactory()
    with pytest.raises(Invalid, match="no mail node named 'nowhere'"):
        services.domain_create(actor=SYSTEM, organisation=org, name="lost.test", node="nowhere")
    assert not Domain.objects.filter(name="lost.test").exists()


def test_the_api_places_on_the_staff_s_node_and_refuses_a_tenant_s_choice(nodes):
    _, node_b = nodes
    org = OrganisationFactory(slug="acme")
    MailboxFactory(domain=DomainFactory(organisation=org, node=node_b))
    staff = staff_api()
    created = staff.post("/domains", {"name": "staffs.test", "organisation": "acme",
                                      "node": "node-b"})
    assert created.status_code == 201
    assert Domain.objects.get(name="staffs.test").node == node_b
    replay = staff.post("/domains", {"name": "staffs.test", "organisation": "acme",
                                     "node": "node-b"})
    assert replay.status_code == 200
    elsewhere = staff.post("/domains", {"name": "staffs.test", "organisation": "acme",
                                        "node": "local"})
    assert elsewhere.status_code == 409 and elsewhere.json()["field"] == "node"
    unknown = staff.post("/domains", {"name": "unknown.test", "organisation": "acme",
                                      "node": "nowhere"})
    assert unknown.status_code == 422 and unknown.json()["code"] == "unknown_node"
    tenant = ApiClient(make_token(org))
    refused = tenant.post("/domains", {"name": "tenants.test", "node": "node-b"})
    assert refused.status_code == 403 and refused.json()["code"] == "node_set_by_staff"
    assert not Domain.objects.filter(name__in=["unknown.test", "tenants.test"]).exists()


def test_the_page_offers_nodes_to_staff_only_and_ignores_an_owner_s_choice(nodes):
    local, node_b = nodes
    org = OrganisationFactory(slug="acme")
    MailboxFactory(domain=DomainFactory(organisation=org, node=node_b))  # B is the busier
    staff = client_for(UserFactory(is_superuser=True, is_staff=True))
    form = staff.get("/mail-admin/acme/domains/add/").content.decode()
    assert 'name="node"' in form and "node-b (1 domain)" in form
    response = staff.post("/mail-admin/acme/domains/add/", {"name": "bystaff.test",
                                                             "node": "node-b"})
    assert response.status_code == 302
    assert Domain.objects.get(name="bystaff.test").node == node_b
    owner = client_for(MembershipFactory(organisation=org, role="owner").user)
    assert 'name="node"' not in owner.get("/mail-admin/acme/domains/add/").content.decode()
    owner.post("/mail-admin/acme/domains/add/", {"name": "byowner.test", "node": "node-b"})
    assert Domain.objects.get(name="byowner.test").node == local  # least-loaded, not theirs


def test_a_domain_change_reaches_the_other_nodes_as_a_peer_change(
    nodes, django_capture_on_commit_callbacks
):
    local, node_b = nodes
    org = OrganisationFactory()
    with django_capture_on_commit_callbacks(execute=True):
        services.domain_create(actor=SYSTEM, organisation=org, name="heard.test", node="local")
    assert NodeChange.objects.filter(node=node_b, kind=NodeChange.Kind.PEERS,
                                     object_id=local.pk).exists()
    assert not NodeChange.objects.filter(node=local, kind=NodeChange.Kind.PEERS).exists()


def test_many_domain_changes_in_one_transaction_are_one_peer_change(
    nodes, django_capture_on_commit_callbacks
):
    local, node_b = nodes
    org = OrganisationFactory()
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        for name in ("one.test", "two.test", "three.test"):
            services.domain_create(actor=SYSTEM, organisation=org, name=name, node="local")
    assert NodeChange.objects.filter(node=node_b, kind=NodeChange.Kind.PEERS).count() == 1


def test_the_node_address_command_checks_the_address_and_tells_the_other_nodes(
    nodes, django_capture_on_commit_callbacks
):
    local, node_b = nodes
    with pytest.raises(CommandError, match="not a host name"):
        call_command("nodeaddress", "node-b", "--smtp-host", "mx b\nevil", "--smtp-port", "25")
    with pytest.raises(CommandError, match="no mail node"):
        call_command("nodeaddress", "nowhere", "--smtp-host", "mx.example.net")
    with django_capture_on_commit_callbacks(execute=True):
        call_command("nodeaddress", "node-b", "--smtp-host", "MX-B.example.net",
                     "--smtp-port", "2525")
    node_b.refresh_from_db()
    assert (node_b.smtp_host, node_b.smtp_port) == ("mx-b.example.net", 2525)
    assert NodeChange.objects.filter(node=local, kind=NodeChange.Kind.PEERS,
                                     object_id=node_b.pk).exists()


@pytest.mark.parametrize("route", [
    PeerRoute("evil.test\n@ smtp:[attacker.example]", "127.0.0.1", 25),
    PeerRoute("ok.test", "host with space", 25),
    PeerRoute("ok.test", "127.0.0.1", 0),
])
def test_the_transport_table_refuses_what_could_inject_a_line(route):
    with pytest.raises(UnsafePeer):
        render_peer_transport([route], 2528)


def test_the_transport_table_is_sorted_and_bracketed():
    table = render_peer_transport([PeerRoute("b.test", "10.0.0.2", 25),
                                   PeerRoute("a.test", "mx.example.net", 2525)], 2528)
    # Through the loopback forwarding listener (SRS for forwarded mail), then to the node.
    lines = table[PEER_TRANSPORT].decode().splitlines()[1:]
    assert lines == ["a.test mailhost-forward:[127.0.0.1]:2528",
                     "b.test mailhost-forward:[127.0.0.1]:2528"]
    lines = table[PEER_FILTER].decode().splitlines()[1:]
    assert lines == ["a.test FILTER smtp:[mx.example.net]:2525", "b.test FILTER smtp:[10.0.0.2]:25"]
