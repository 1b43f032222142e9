"""MailNode and NodeChange moved from mailboxes/ to nodes/ by migration: a database built before
the move keeps every node, change and link to them, and the moved models read it."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from identity.models import NodeInboundStatus
from mailboxes.models import Domain
from nodes.models import MailNode, NodeChange

BEFORE = [
    ("mailboxes", "0006_role_addresses"),
    ("identity", "0004_inbound_policy_and_flow"),
    ("nodes", None),
]


def _migrate(targets) -> MigrationExecutor:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor


@pytest.mark.django_db(transaction=True)
def test_the_node_rows_survive_the_move_to_nodes():
    latest = MigrationExecutor(connection).loader.graph.leaf_nodes()
    try:
        executor = _migrate(BEFORE)
        old = executor.loader.project_state(BEFORE[:2]).apps
        node = old.get_model("mailboxes", "MailNode").objects.create(
            name="before-the-move", state_dir="state", desired_revision=3, applied_revision=1
        )
        organisation = old.get_model("tenants", "Organisation").objects.create(
            name="Before", slug="before"
        )
        domain = old.get_model("mailboxes", "Domain").objects.create(
            name="before.test", organisation=organisation, node=node
        )
        old.get_model("mailboxes", "NodeChange").objects.create(
            node=node, revision=3, kind="roles", object_id=domain.pk
        )
    finally:
        _migrate(latest)

    moved = MailNode.objects.get(name="before-the-move")
    assert (moved.desired_revision, moved.applied_revision, moved.lag) == (3, 1, 2)
    assert list(NodeChange.objects.filter(node=moved).values_list("revision", "kind")) == [
        (3, "roles")
    ]
    assert Domain.objects.get(name="before.test").node == moved
    NodeInboundStatus.objects.create(node=moved)  # identity's rows point at the moved table
    assert moved.inbound_status.breaker_open is False
