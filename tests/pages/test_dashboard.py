import re

from mailboxes import services
from nodes.models import MailNode
from tenants.access import Actor
from tests.factories import DomainFactory, MailboxFactory
from tests.html_text import section_text, visible_text


def test_it_shows_domains_counts_events_and_stack(owner, owner_client, mailbox, other_org):
    domain = mailbox.domain  # acme.test, with anna (active)
    MailboxFactory(domain=domain, local_part="ben")
    MailboxFactory(domain=domain, local_part="cleo", status="suspended")
    MailboxFactory(domain=domain, local_part="dora", deleted_at="2026-01-01T00:00Z")  # not live
    DomainFactory(organisation=mailbox.domain.organisation, name="beta.test")
    MailboxFactory(domain=DomainFactory(organisation=other_org), local_part="nope")  # not ours
    services.mailbox_set_status(
        actor=Actor(user=owner), mailbox=mailbox, status="suspended"
    )  # an audited change, and anna is now suspended
    MailNode.objects.filter(pk=domain.node_id).update(desired_revision=7, applied_revision=4)

    response = owner_client.get("/mail-admin/acme/")
    assert response.status_code == 200
    text = visible_text(response.content)
    assert "2 domains 3 mailboxes 1 active 2 suspended" in text
    # Each domain with its live mailboxes; other organisations' domains are not listed.
    domains = section_text(response.content, "h-domains")
    assert "acme.test" in domains and "beta.test" in domains
    assert "client" not in domains
    assert domains.index("acme.test") < domains.index("beta.test")
    rows = {name: count for name, count in re.findall(r"(\S+\.test)\s.*?(\d+)(?= |$)", domains)}
    assert rows == {"acme.test": "3", "beta.test": "0"}, domains
    # The node serving them, three changes behind.
    stack = section_text(response.content, "h-stack")
    assert "Applying" in stack and "Applied lag 3 changes waiting" in stack
    # The change just made, by whom and to what.
    changes = section_text(response.content, "h-audit")
    assert "mailbox.suspend" in changes or "mailbox.status" in changes, changes
    assert "anna@acme.test" in changes and owner.email in changes


def test_it_sends_a_single_organisation_member_straight_to_its_dashboard(owner_client, org):
    response = owner_client.get("/mail-admin/")
    assert response.status_code == 302 and response["Location"] == "/mail-admin/acme/"


def test_it_asks_a_member_of_several_organisations_to_choose(owner, owner_client, other_org):
    from tests.factories import MembershipFactory

    MembershipFactory(user=owner, organisation=other_org, role="viewer")
    response = owner_client.get("/mail-admin/")
    assert response.status_code == 200
    assert b"Acme Ltd" in response.content and b"Globex" in response.content


def test_it_is_404_for_another_organisation(stranger_client, org):
    assert stranger_client.get("/mail-admin/acme/").status_code == 404


def test_it_hides_write_controls_from_a_viewer(viewer_client, domain):
    body = viewer_client.get("/mail-admin/acme/").content.decode()
    assert "Add domain" not in body and "New mailbox" not in body


def test_it_needs_a_signed_in_operator(client, org):
    response = client.get("/mail-admin/acme/")
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_it_runs_constant_queries(owner_client, mailbox, assert_constant_queries):
    org = mailbox.domain.organisation

    def grow():
        for _ in range(12):
            MailboxFactory(domain=DomainFactory(organisation=org))

    assert_constant_queries(owner_client, "/mail-admin/acme/", grow)
