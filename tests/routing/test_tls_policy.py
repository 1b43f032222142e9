"""Outbound TLS policies and failures in the portal: the service (staff only, audited, one node
change), what the reconciler renders from it, collecting the node's TLS outcomes, the staff
page at /mail-admin/outbound/tls/ and the staff API."""

from pathlib import Path

import pytest
from django.test import Client

from mailhost.backend.config import EVENTS_DB, NodeConfig
from mailhost.backend.events import PolicyLookup, follow
from mailhost.backend.tls_policy import POLICY_MAP, parse_policy_map
from mailhost.errors import Forbidden, Invalid
from nodes.models import MailNode, NodeChange
from nodes.reconcile import plan_full, plan_incremental
from routing.models import TlsFailure, TlsPolicy, TlsSessionCount
from routing.services import tls_outcomes_collect, tls_policy_delete, tls_policy_set
from routing.tlsrpt import tlsrpt_report
from tenants.access import SYSTEM, Actor
from tenants.models import AuditEvent
from tenants.services import staff_token_create
from tests.api.conftest import ApiClient, make_token
from tests.factories import MembershipFactory, OrganisationFactory, UserFactory

pytestmark = pytest.mark.django_db

SMTP = "Dec 01 15:31:01 mail postfix/smtp"


@pytest.fixture
def node(db):
    # Never started: only its rendered files are looked at (a short path, as NodeConfig wants).
    return MailNode.objects.create(name="tls-node", state_dir="/tmp/mh-tls-never-started")


@pytest.fixture
def staff_user(db):
    user = UserFactory(is_superuser=True, is_staff=True)
    user.save()
    return user


@pytest.fixture
def staff_client(staff_user):
    client = Client()
    client.force_login(staff_user)
    return client


@pytest.fixture
def member_client(db):
    user = MembershipFactory(organisation=OrganisationFactory(), role="owner").user
    user.save()
    client = Client()
    client.force_login(user)
    return client


def test_it_sets_and_removes_a_policy_audited_with_one_node_change_each(node, staff_user):
    actor = Actor(user=staff_user)
    policy, created = tls_policy_set(actor=actor, domain="Partner.Example", level="secure",
                                     note="contract")
    assert (policy.domain, policy.level, created) == ("partner.example", "secure", True)
    again, created = tls_policy_set(actor=actor, domain="partner.example", level="secure",
                                    note="contract")
    assert (again.pk, created) == (policy.pk, False)  # unchanged: no audit, no change
    tls_policy_delete(actor=actor, domain="partner.example")
    assert not TlsPolicy.objects.exists()
    assert list(AuditEvent.objects.order_by("id").values_list("action", "target")) == [
        ("tls_policy.set", "partner.example"), ("tls_policy.delete", "partner.example")]
    assert NodeChange.objects.filter(node=node, kind="tls_policy").count() == 2


def test_it_refuses_anyone_but_staff_and_bad_input(node, staff_user):
    member = MembershipFactory(organisation=OrganisationFactory(), role="owner").user
    with pytest.raises(Forbidden):
        tls_policy_set(actor=Actor(user=member), domain="partner.example", level="secure")
    for domain, level in (("not a domain", "secure"), ("partner.example", "none")):
        with pytest.raises(Invalid):
            tls_policy_set(actor=Actor(user=staff_user), domain=domain, level=level)
    assert not TlsPolicy.objects.exists() and not NodeChange.objects.exists()


def test_the_reconciler_renders_the_policy_map_the_node_reads(node, staff_user):
    tls_policy_set(actor=Actor(user=staff_user), domain="partner.example", level="dane-only")
    config = NodeConfig.from_settings(node.state_dir)
    full = plan_full(node, config)
    assert parse_policy_map(full.files[POLICY_MAP].data.decode()) == {
        "partner.example": "dane-only"}
    change = NodeChange.objects.get(kind="tls_policy")
    incremental = plan_incremental(node, config, [("tls_policy", change.object_id)])
    assert POLICY_MAP in incremental.files and POLICY_MAP in incremental.file_scope


def _agent_store(state_dir: Path, lines: list[str]) -> Path:
    """The node's event store, written by the real event agent code from log lines."""
    log, db = state_dir / "postfix.log", state_dir / EVENTS_DB
    db.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("".join(line + "\n" for line in lines))
    follow(log, db, policy=PolicyLookup(default_level="dane"))
    return db


def test_it_collects_the_nodes_tls_outcomes_once_and_builds_an_rfc_8460_report(tmp_path):
    store = _agent_store(tmp_path, [
        f"{SMTP}[30]: 7EF: to=<a@b.example>, relay=mx.b.example[192.0.2.5]:25, delay=0.2, "
        "delays=0/0/0.1/0, dsn=4.7.5, status=deferred (Server certificate not trusted)",
        f"{SMTP}[31]: Verified TLS connection established to mx.b.example[192.0.2.5]:25: "
        "TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)",
        f"{SMTP}[31]: 7F0: to=<c@b.example>, relay=mx.b.example[192.0.2.5]:25, delay=0.2, "
        "delays=0/0/0.1/0, dsn=2.0.0, status=sent (250 2.0.0 Ok)",
    ])
    assert tls_outcomes_collect(node_name="n1", store=store) == 1
    assert tls_outcomes_collect(node_name="n1", store=store) == 0  # nothing doubled
    failure = TlsFailure.objects.get()
    assert (failure.domain, failure.mx_host, failure.policy_type, failure.result_type) == (
        "b.example", "mx.b.example", "tlsa", "tlsa-invalid")
    assert TlsSessionCount.objects.get().successes == 1

    report = tlsrpt_report(domain="b.example", day=failure.at.date(),
                           organisation_name="Mailhost test", contact_info="tls@x.example",
                           report_id="r1")
    assert report["date-range"]["start-datetime"].endswith("T00:00:00Z")
    [policy] = report["policies"]
    assert policy["policy"]["policy-type"] == "tlsa"
    assert policy["summary"] == {"total-successful-session-count": 1,
                                 "total-failure-session-count": 1}
    assert policy["failure-details"] == [{
        "result-type": "tlsa-invalid", "receiving-mx-hostname": "mx.b.example",
        "receiving-ip": "192.0.2.5", "failed-session-count": 1}]


def test_the_page_shows_policies_and_failures_to_staff_only(staff_client, member_client,
                                                            tmp_path):
    store = _agent_store(tmp_path, [
        f"{SMTP}[32]: 8AB: to=<x@other.example>, relay=mx.other.example[192.0.2.7]:25, "
        "delay=1, delays=0/0/0/1, dsn=4.7.4, status=deferred (TLS is required, but was not "
        "offered by host mx.other.example[192.0.2.7])",
    ])
    tls_outcomes_collect(node_name="n1", store=store)
    created = staff_client.post("/mail-admin/outbound/tls/",
                                {"domain": "partner.example", "level": "secure", "note": ""})
    assert created.status_code == 302
    page = staff_client.get("/mail-admin/outbound/tls/", {"domain": "other.example"})
    text = page.content.decode()
    assert page.status_code == 200
    assert "partner.example" in text and "starttls-not-supported" in text
    assert "mx.other.example" in text
    bad = staff_client.post("/mail-admin/outbound/tls/",
                            {"domain": "partner.example", "level": "none"})
    assert bad.status_code == 400 and TlsPolicy.objects.get().level == "secure"
    assert member_client.get("/mail-admin/outbound/tls/").status_code == 403
    assert member_client.post("/mail-admin/outbound/tls/partner.example/remove/").status_code \
        == 403
    removed = staff_client.post("/mail-admin/outbound/tls/partner.example/remove/")
    assert removed.status_code == 302 and not TlsPolicy.objects.exists()


def test_the_staff_api_sets_lists_and_removes_policies_and_lists_failures(db):
    _, raw = staff_token_create(actor=SYSTEM, name="tls robot")
    api = ApiClient(raw)
    created = api.post("/staff/tls-policies", {"domain": "partner.example", "level": "secure"})
    assert created.status_code == 201, created.content
    same = api.post("/staff/tls-policies", {"domain": "partner.example", "level": "secure"})
    assert same.status_code == 200
    assert api.post("/staff/tls-policies",
                    {"domain": "partner.example", "level": "none"}).status_code == 422
    assert api.post("/staff/tls-policies",
                    {"domain": "not a domain", "level": "may"}).status_code == 422
    assert [p["domain"] for p in api.get("/staff/tls-policies").json()["items"]] == [
        "partner.example"]
    assert api.get("/staff/tls-failures").json() == {"count": 0, "domains": [], "items": []}
    tenant = ApiClient(make_token(OrganisationFactory()))
    assert tenant.get("/staff/tls-policies").status_code in (401, 403)
    assert tenant.delete("/staff/tls-policies/partner.example").status_code in (401, 403)
    assert api.delete("/staff/tls-policies/partner.example").status_code == 200
    assert api.delete("/staff/tls-policies/partner.example").status_code == 404
