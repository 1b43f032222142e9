from tests.factories import DomainFactory, MailboxFactory


def test_it_shows_domains_counts_events_and_stack(owner_client, mailbox):
    response = owner_client.get("/mail-admin/acme/")
    assert response.status_code == 200
    body = response.content.decode()
    assert "acme.test" in body and "Mail stack" in body and "Recent changes" in body
    assert "Applied lag" in body


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
