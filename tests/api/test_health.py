import datetime as dt

import pytest
from django.test import override_settings
from django.utils import timezone

from nodes.changes import node_default
from nodes.models import MailNode
from tests.api.conftest import apply_all_nodes, database_down

pytestmark = pytest.mark.django_db


@pytest.fixture
def node():
    node = node_default()
    MailNode.objects.filter(pk=node.pk).update(desired_revision=7)
    apply_all_nodes()
    node.refresh_from_db()
    return node


def test_it_reports_healthy_parts_and_each_nodes_revision_and_lag(anonymous, node):
    response = anonymous.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["ok"] is True and body["failing"] == []
    assert body["database"]["ok"] and body["broker"]["ok"]
    [reported] = body["nodes"]
    assert reported.pop("applied_at").startswith(node.applied_at.strftime("%Y-%m-%dT%H:%M"))
    # Expiries as the node's files say (tests/backend/test_certificates.py).
    assert [c["name"] for c in reported.pop("certificates")] == ["mail-host"]
    assert reported == {
        "name": "local", "ok": True, "desired_revision": 7, "applied_revision": 7, "lag": 0,
        "detail": "Up to date.",
    }


def test_it_is_still_healthy_while_a_node_applies_recent_changes(anonymous, node):
    MailNode.objects.filter(pk=node.pk).update(desired_revision=9)
    body = anonymous.get("/health").json()
    assert body["ok"] is True and body["nodes"][0]["lag"] == 2


def test_it_answers_503_naming_a_node_that_stopped_applying(anonymous, node):
    MailNode.objects.filter(pk=node.pk).update(
        desired_revision=9, applied_at=timezone.now() - dt.timedelta(hours=2)
    )
    response = anonymous.get("/health")
    assert response.status_code == 503
    assert response.json()["failing"] == ["node:local"]


def test_it_answers_503_naming_a_node_whose_reconcile_fails(anonymous, node):
    MailNode.objects.filter(pk=node.pk).update(
        desired_revision=9, last_error="postmap: /secret/path/and/credentials failed"
    )
    response = anonymous.get("/health")
    assert response.status_code == 503
    assert response.json()["failing"] == ["node:local"]
    assert "secret" not in response.content.decode()  # the error text stays private


def test_it_answers_503_naming_the_broker_when_it_is_down(anonymous, node):
    with override_settings(CELERY_BROKER_URL="redis://:hunter2@127.0.0.1:1/0"):
        response = anonymous.get("/health")
    assert response.status_code == 503
    assert response.json()["failing"] == ["broker"]
    text = response.content.decode()
    assert "hunter2" not in text and "127.0.0.1" not in text


@pytest.mark.django_db(transaction=True)
def test_it_answers_503_naming_the_database_when_it_is_down(anonymous):
    with database_down():
        response = anonymous.get("/health")
    assert response.status_code == 503
    assert "database" in response.json()["failing"]
