"""/metrics, scraped as Prometheus would and parsed with prometheus_client's own parser."""

import io
import os
import socket
import tempfile
import time
import urllib.request

import pytest
from django.test import Client
from django.utils import timezone
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families

from delivery.models import Message, Recipient, Suppression
from identity.models import InboundFlow
from mailboxes.services import domain_create, mailbox_create
from nodes.changes import node_default
from nodes.reconcile import reconcile_incremental
from reports.services import report_submit
from status import checks
from status.models import State
from status.services import status_record
from tenants.access import SYSTEM
from tests.factories import DomainFactory, MailboxFactory, OrganisationFactory
from tests.reports.corpus import aggregate, billion_laughs
from tests.stack import (
    fetch_inbox,
    imap_login,
    make_message,
    smtp_send,
    unique_domain,
    wait_for,
)

pytestmark = pytest.mark.django_db

TOKEN = "scrape-token-0123456789"


def scrape(token: str | None = TOKEN):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return Client().get("/metrics", headers=headers)


def samples(response) -> dict:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }


def test_it_serves_the_figures_to_the_scraper(settings):
    settings.MAILHOST_METRICS_TOKEN = TOKEN
    domain = DomainFactory(name="example.com")
    MailboxFactory(domain=domain)
    rows = [("192.0.2.25", 90, "pass", "pass"), ("198.51.100.66", 10, "fail", "fail")]
    for data in (aggregate(rows=rows, begin=int(time.time()) - 86400), billion_laughs()):
        report_submit(actor=SYSTEM, stream=io.BytesIO(data), source="mail")

    response = scrape()
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=")
    found = samples(response)
    assert found[("mailhost_mailboxes", ())] == 1
    assert found[("mailhost_domains", (("status", "active"),))] == 1
    dmarc = "mailhost_dmarc_messages_14d"
    assert found[(dmarc, (("aligned", "true"), ("domain", "example.com")))] == 90
    assert found[(dmarc, (("aligned", "false"), ("domain", "example.com")))] == 10
    assert found[("mailhost_report_submissions", (("kind", "unknown"), ("outcome", "rejected"),
                                                  ("source", "mail")))] == 1
    assert any(name == "mailhost_node_revision_lag" for name, _ in found)


def test_it_is_closed_without_the_token(settings):
    settings.MAILHOST_METRICS_TOKEN = ""
    assert scrape().status_code == 404
    settings.MAILHOST_METRICS_TOKEN = TOKEN
    assert scrape(None).status_code == 401
    assert scrape("wrong-token").status_code == 401


def test_it_serves_what_the_status_checks_measured_and_the_inbound_outcomes(
    settings, tmp_path
):
    settings.MAILHOST_METRICS_TOKEN = TOKEN
    node = node_default()
    now = timezone.now()
    (tmp_path / "deferred").mkdir()
    (tmp_path / "deferred" / "Q1").write_text("x")
    status_record([
        checks.queue_result(f"node:{node.name}", node.name, tmp_path, now=now),
        checks.disk_result(f"node:{node.name}:disk:mail", "disk", tmp_path, {}, now=now),
        checks.Result(f"node:{node.name}:daemon:dovecot", "daemons", "dovecot", State.PROBLEM,
                      "Not running."),
    ])
    InboundFlow.objects.create(node=node, day=now.date(), domain="example.com",
                               outcome="rejected", count=7)
    found = samples(scrape())
    assert found[("mailhost_queue_messages", (("node", node.name),))] == 1
    assert found[("mailhost_queue_oldest_seconds", (("node", node.name),))] >= 0
    assert 0 < found[("mailhost_disk_used_ratio", (("node", node.name), ("volume", "mail")))] <= 1
    assert found[("mailhost_daemon_up", (("daemon", "dovecot"), ("node", node.name)))] == 0
    assert found[("mailhost_status_checks", (("group", "daemons"), ("state", "problem")))] == 1
    assert found[("mailhost_inbound_messages_7d",
                  (("node", node.name), ("outcome", "rejected")))] == 7
    assert found[("mailhost_queue_messages_by_queue",
                  (("node", node.name), ("queue", "deferred")))] == 1
    assert found[("mailhost_queue_messages_by_queue",
                  (("node", node.name), ("queue", "active")))] == 0


def test_it_serves_delivery_figures_by_status_and_the_suppressions(settings):
    settings.MAILHOST_METRICS_TOKEN = TOKEN
    domain = DomainFactory(name="sender.example")
    org, node = domain.organisation, domain.node.name
    message = Message.objects.create(organisation=org, domain=domain, sender="a@sender.example",
                                     message_id="<m1@sender.example>", size=10)
    for address, status in (("x@rcpt.example", "delivered"), ("y@rcpt.example", "delivered"),
                            ("z@rcpt.example", "deferred")):
        Recipient.objects.create(message=message, address=address, kind="to", status=status)
    Suppression.objects.create(organisation=org, scope="address", value="gone@rcpt.example",
                               reason="hard_bounce")
    status_record([checks.Result(f"node:{node}:deferred", "queue", "deferred", State.OK,
                                 "1 deferred.", data={"deferred": 1, "oldest_seconds": 5})])
    found = samples(scrape())
    rcpts = "mailhost_delivery_recipients"
    assert found[(rcpts, (("node", node), ("status", "delivered")))] == 2
    assert found[(rcpts, (("node", node), ("status", "deferred")))] == 1
    assert found[("mailhost_suppressions", (("reason", "hard_bounce"), ("scope", "address")))] == 1
    assert found[("mailhost_queue_deferred_messages", (("node", node),))] == 1

    Recipient.objects.filter(status="deferred").update(status="bounced")
    found = samples(scrape())
    assert (rcpts, (("node", node), ("status", "deferred"))) not in found
    assert found[(rcpts, (("node", node), ("status", "bounced")))] == 1


def _dovecot_counters(stack) -> dict:
    """Dovecot's stats listener, scraped and parsed as OpenMetrics (prometheus_client)."""
    host, port = stack.address("stats")
    with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in openmetrics_families(text)
        for sample in family.samples
    }


@pytest.mark.stack
def test_dovecot_serves_its_own_counters_on_loopback_and_they_move_with_real_logins(mail_stack):
    before = _dovecot_counters(mail_stack)
    failures = before.get(("dovecot_auth_failure_total", ()), 0)
    assert not imap_login(mail_stack, f"nobody@{unique_domain()}", "wrong password")
    after = wait_for(lambda: (c := _dovecot_counters(mail_stack)).get(
        ("dovecot_auth_failure_total", ()), 0) > failures and c)
    assert after[("dovecot_auth_failure_total", ())] == failures + 1
    success = ("dovecot_auth_success_total", ())
    assert after[success] == before[success]


@pytest.mark.stack
def test_dovecots_delivery_and_login_counters_move_after_real_mail(stack_node, mail_stack):
    name = unique_domain("stats")
    domain = domain_create(actor=SYSTEM, organisation=OrganisationFactory(), name=name)
    address, password = f"carol@{name}", "stats password 1"
    mailbox_create(actor=SYSTEM, domain=domain, local_part="carol", password=password)
    reconcile_incremental(stack_node)
    before = _dovecot_counters(mail_stack)
    delivered = ("dovecot_mail_delivery_total", ())
    smtp_send(mail_stack, "internal", f"sender@{name}", address,
              make_message(f"sender@{name}", address, "counted"))
    after = wait_for(lambda: (c := _dovecot_counters(mail_stack))[delivered]
                     > before[delivered] and c)
    assert after[delivered] == before[delivered] + 1
    assert [m["Subject"] for m in fetch_inbox(mail_stack, address, password)] == ["counted"]
    success = ("dovecot_auth_success_total", ())
    assert _dovecot_counters(mail_stack)[success] >= before[success] + 1


def _node_samples(node: str) -> dict:
    """/metrics' samples labelled with `node`, by (name, the other labels)."""
    return {
        (name, tuple((k, v) for k, v in labels if k != "node")): value
        for (name, labels), value in samples(scrape()).items() if ("node", node) in labels
    }


@pytest.mark.stack
def test_it_relays_each_nodes_dovecot_and_postfix_counters_which_move_with_real_mail(
    settings, stack_node, mail_stack
):
    settings.MAILHOST_METRICS_TOKEN = TOKEN
    name = unique_domain("relay")
    domain = domain_create(actor=SYSTEM, organisation=OrganisationFactory(), name=name)
    address, password = f"dave@{name}", "relayed counters 1"
    mailbox_create(actor=SYSTEM, domain=domain, local_part="dave", password=password)
    reconcile_incremental(stack_node)
    before = _node_samples(stack_node.name)
    for source in ("dovecot", "postfix_queue", "postfix_events"):
        assert before[("mailhost_node_source_up", (("source", source),))] == 1
    assert before[("mailhost_node_postfix_queue_messages", (("queue", "deferred"),))] >= 0
    delivered = ("dovecot_mail_delivery_total", ())
    lmtp_sent = ("mailhost_node_postfix_deliveries_total", (("agent", "lmtp"),
                                                            ("status", "sent")))

    smtp_send(mail_stack, "internal", f"sender@{name}", address,
              make_message(f"sender@{name}", address, "relayed"))
    after = wait_for(lambda: (now := _node_samples(stack_node.name)).get(lmtp_sent, 0)
                     > before.get(lmtp_sent, 0) and now[delivered] > before[delivered] and now)
    assert after[delivered] == before[delivered] + 1
    assert after[lmtp_sent] == before.get(lmtp_sent, 0) + 1
    assert [m["Subject"] for m in fetch_inbox(mail_stack, address, password)] == ["relayed"]
    logins = ("dovecot_auth_success_total", ())
    assert _node_samples(stack_node.name)[logins] > before[logins]


def test_a_node_that_does_not_answer_is_a_zero_not_a_failed_scrape(settings):
    settings.MAILHOST_METRICS_TOKEN = TOKEN
    settings.MAILHOST_METRICS_NODE_TIMEOUT_MS = 300
    silent = socket.socket()  # takes the connection, never answers
    silent.bind(("127.0.0.1", 0))
    silent.listen(4)
    settings.MAILHOST_PORTS = {**settings.MAILHOST_PORTS, "stats": silent.getsockname()[1]}
    node = node_default()
    node.state_dir = tempfile.mkdtemp(prefix="mh-gone-")  # no spool, no event store
    node.save(update_fields=["state_dir"])
    try:
        response = scrape()
    finally:
        silent.close()
        os.rmdir(node.state_dir)
    assert response.status_code == 200
    found = {key: value for key, value in samples(response).items()
             if ("node", node.name) in key[1]}
    for source in ("dovecot", "postfix_queue", "postfix_events"):
        assert found[("mailhost_node_source_up",
                      (("node", node.name), ("source", source)))] == 0
    assert not any(name.startswith("dovecot_") for name, _ in found)
