"""Alerts on the deferred queue, through the status checks: past the threshold the node's and
the sending organisation's checks turn to problems (an alert each, the organisation's visible
to its members), and back to OK (another alert) once the queue is cleared."""

import pytest

from routing.services import queue_act
from status.models import StatusAlert, StatusCheck
from status.selectors import status_checks
from status.services import status_check_node
from tenants.access import SYSTEM, Actor
from tests.factories import MembershipFactory, OrganisationFactory

pytestmark = pytest.mark.stack


def test_deferred_mail_past_the_threshold_alerts_and_clears(deferred, stack_node, settings):
    settings.MAILHOST_QUEUE_ALERT_DEFERRED, settings.MAILHOST_QUEUE_ALERT_AGE_HOURS = 0, 12
    hosted, queue_id = deferred("qt")
    organisation = hosted.domain.organisation
    node_key = f"node:{stack_node.name}:deferred"
    org_key = f"org:{organisation.pk}:deferred:{stack_node.name}"

    status_check_node(stack_node)

    assert StatusCheck.objects.get(key=node_key).state == "problem"
    check = StatusCheck.objects.get(key=org_key)
    assert check.state == "problem" and "451 4.2.0" in check.evidence
    assert check.organisation_id == organisation.pk
    alert = StatusAlert.objects.get(key=org_key)
    assert alert.state == "problem" and alert.organisation_id == organisation.pk
    member = Actor(user=MembershipFactory(organisation=organisation).user)
    stranger = Actor(user=MembershipFactory(organisation=OrganisationFactory()).user)
    assert org_key in set(status_checks(member).values_list("key", flat=True))
    assert org_key not in set(status_checks(stranger).values_list("key", flat=True))

    queue_act(actor=SYSTEM, organisation=organisation, queue_id=queue_id, action="delete")
    status_check_node(stack_node)

    assert StatusCheck.objects.get(key=org_key).state == "ok"
    assert StatusAlert.objects.filter(key=org_key, state="ok", previous="problem").exists()


def test_a_message_past_the_age_limit_alerts(deferred, stack_node, settings):
    settings.MAILHOST_QUEUE_ALERT_DEFERRED, settings.MAILHOST_QUEUE_ALERT_AGE_HOURS = 10**6, 0
    hosted, _ = deferred("qu")
    org_key = f"org:{hosted.domain.organisation_id}:deferred:{stack_node.name}"

    status_check_node(stack_node)

    assert StatusCheck.objects.get(key=org_key).state == "problem"
