"""The Celery app talks to the real Redis broker: a task sent with .delay() runs in a worker."""

import datetime as dt
import time

import pytest
from celery.contrib.testing.worker import start_worker
from django.utils import timezone

from mailhost.celery import app
from tenants.models import Invitation
from tenants.tasks import expire_invitations
from tests.factories import OrganisationFactory


@pytest.mark.django_db(transaction=True)
def test_it_runs_a_task_through_the_real_broker():
    org = OrganisationFactory()
    past = timezone.now() - dt.timedelta(days=1)
    Invitation.objects.create(
        organisation=org, email="old@x.test", token_hash="a" * 64, expires_at=past
    )
    Invitation.objects.create(
        organisation=org,
        email="new@x.test",
        token_hash="b" * 64,
        expires_at=timezone.now() + dt.timedelta(days=1),
    )
    assert app.conf.broker_url.startswith("redis://")
    with start_worker(app, perform_ping_check=False, queues=["celery"], pool="solo"):
        expire_invitations.delay()
        deadline = time.monotonic() + 20
        while Invitation.objects.filter(email="old@x.test").exists():
            assert time.monotonic() < deadline, "the worker never ran the task"
            time.sleep(0.1)
    assert list(Invitation.objects.values_list("email", flat=True)) == ["new@x.test"]
