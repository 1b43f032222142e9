"""Concurrent clients, with real threads against Postgres."""

import threading

import pytest
from django.db import connection

from mailboxes.models import Domain, Mailbox
from mailhost.passwords import verify_password
from tenants.models import AuditEvent
from tests.api.conftest import ApiClient, make_tenant

pytestmark = pytest.mark.embedded  # also on the SQLite default (scripts/test.sh)

CLIENTS = 50


@pytest.mark.django_db(transaction=True)
def test_it_creates_exactly_one_mailbox_from_50_concurrent_posts():
    tenant = make_tenant("acme")
    start = threading.Barrier(CLIENTS)
    responses: list = []

    def create():
        try:
            start.wait(timeout=30)
            client = ApiClient(tenant.rw.token)
            responses.append(client.post("/mailboxes", {"address": "new@acme.test"}))
        finally:
            connection.close()  # each thread has its own connection; give it back

    threads = [threading.Thread(target=create) for _ in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert len(responses) == CLIENTS
    statuses = sorted(response.status_code for response in responses)
    assert statuses == [201] + [409] * (CLIENTS - 1)
    mailbox = Mailbox.objects.get(local_part="new")
    winner = next(r for r in responses if r.status_code == 201).json()
    assert verify_password(winner["password"], mailbox.password_hash)
    losers = [r.json() for r in responses if r.status_code == 409]
    assert {(body["code"], body["field"]) for body in losers} == {("address_taken", "address")}
    assert all("password" not in body for body in losers)
    assert AuditEvent.objects.filter(action="mailbox.create", target="new@acme.test").count() == 1


@pytest.mark.django_db(transaction=True)
def test_it_acts_once_for_concurrent_retries_with_one_idempotency_key():
    tenant = make_tenant("acme")
    start = threading.Barrier(10)
    responses: list = []

    def create():
        try:
            start.wait(timeout=30)
            client = ApiClient(tenant.rw.token)
            responses.append(
                client.post("/domains", {"name": "new.test"}, headers={"Idempotency-Key": "r-1"})
            )
        finally:
            connection.close()

    threads = [threading.Thread(target=create) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert len(responses) == 10
    assert {r.status_code for r in responses} <= {201, 409}
    replayed = [r for r in responses if r.status_code == 201 and "Idempotent-Replayed" in r]
    assert len([r for r in responses if r.status_code == 201]) - len(replayed) == 1
    assert Domain.objects.filter(name="new.test").count() == 1
    assert AuditEvent.objects.filter(action="domain.create", target="new.test").count() == 1
    waiting = [r.json()["code"] for r in responses if r.status_code == 409]
    assert set(waiting) <= {"idempotency_in_progress"}
