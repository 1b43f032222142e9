from delivery.models import SendingQuota
from identity.models import DkimKey
from mailboxes.models import Domain
from mailhost.backend import outbound, quotas
from tests.factories import DomainFactory, MailboxFactory, UserFactory
from tests.pages.conftest import client_for


def test_it_lists_domains_with_counts(owner_client, mailbox):
    response = owner_client.get("/mail-admin/acme/domains/")
    assert response.status_code == 200
    assert b"acme.test" in response.content


def test_it_lists_domains_in_constant_queries(owner_client, org, assert_constant_queries):
    DomainFactory(organisation=org)
    assert_constant_queries(
        owner_client,
        "/mail-admin/acme/domains/",
        lambda: [MailboxFactory(domain=DomainFactory(organisation=org)) for _ in range(15)],
    )


def test_it_paginates_domains(owner_client, org, settings):
    settings.MAILHOST_PAGE_SIZE = 5
    for _ in range(7):
        DomainFactory(organisation=org)
    page2 = owner_client.get("/mail-admin/acme/domains/?page=2").content.decode()
    assert "6–7 of 7" in page2 and "Page 2 of 2" in page2


def test_it_adds_a_domain_and_shows_the_records_to_publish(owner_client, org):
    response = owner_client.post("/mail-admin/acme/domains/add/", {"name": "Bücher.Test"})
    assert response.status_code == 302
    assert response["Location"] == "/mail-admin/acme/domains/xn--bcher-kva.test/dns/?new=1"
    domain = Domain.objects.get(name="xn--bcher-kva.test")
    assert domain.organisation == org
    assert DkimKey.objects.filter(domain=domain, state="active").exists()
    page = owner_client.get(response["Location"]).content.decode()
    assert "What to do next" in page and "_dmarc.xn--bcher-kva.test." in page
    assert "._domainkey.xn--bcher-kva.test." in page and "Download zone file" in page
    detail = owner_client.get("/mail-admin/acme/domains/xn--bcher-kva.test/").content.decode()
    assert "bücher.test" in detail and "DNS posture" in detail


def test_it_shows_why_a_domain_name_is_refused(owner_client, org):
    response = owner_client.post("/mail-admin/acme/domains/add/", {"name": "not a domain"})
    assert response.status_code == 422
    assert b"contains a space or separator" in response.content


def test_it_refuses_a_domain_that_is_hosted_already(owner_client, domain):
    response = owner_client.post("/mail-admin/acme/domains/add/", {"name": "acme.test"})
    assert response.status_code == 422
    assert b"already a domain of this organisation" in response.content


def test_it_forbids_a_viewer_to_add_a_domain(viewer_client, org):
    assert viewer_client.get("/mail-admin/acme/domains/add/").status_code == 403
    response = viewer_client.post("/mail-admin/acme/domains/add/", {"name": "x.test"})
    assert response.status_code == 403
    assert b"read-only" in response.content
    assert not Domain.objects.filter(name="x.test").exists()


def test_it_is_404_to_add_a_domain_to_another_organisation(stranger_client, org):
    assert (
        stranger_client.post("/mail-admin/acme/domains/add/", {"name": "x.test"}).status_code == 404
    )


def test_it_is_404_for_another_organisations_domain(
    stranger_client, owner_client, domain, other_org
):
    assert stranger_client.get("/mail-admin/acme/domains/acme.test/").status_code == 404
    # …and through one's own organisation's URL too.
    DomainFactory(organisation=other_org, name="globex.test")
    assert owner_client.get("/mail-admin/acme/domains/globex.test/").status_code == 404


def test_it_shows_a_domain_in_constant_queries(owner_client, mailbox, assert_constant_queries):
    domain = mailbox.domain
    assert_constant_queries(
        owner_client,
        "/mail-admin/acme/domains/acme.test/",
        lambda: [MailboxFactory(domain=domain) for _ in range(12)],
    )


def test_it_edits_a_domain(owner_client, domain):
    response = owner_client.post(
        "/mail-admin/acme/domains/acme.test/edit/",
        {"status": "disabled", "max_mailboxes": "", "default_quota_mb": "100"},
    )
    assert response.status_code == 302
    domain.refresh_from_db()
    assert (domain.status, domain.max_mailboxes, domain.default_quota_mb) == (
        "disabled", None, 100
    )


def test_it_lets_staff_set_the_mailbox_limit_and_shows_it_read_only_to_the_owner(
    owner_client, domain
):
    staff = UserFactory(is_superuser=True, is_staff=True)
    staff_client = client_for(staff)
    response = staff_client.post(
        "/mail-admin/acme/domains/acme.test/edit/",
        {"status": "active", "max_mailboxes": "5", "default_quota_mb": "100"},
    )
    assert response.status_code == 302
    domain.refresh_from_db()
    assert domain.max_mailboxes == 5
    form = owner_client.get("/mail-admin/acme/domains/acme.test/edit/").content.decode()
    assert "Set by the mail service" in form and "readonly" in form
    kept = owner_client.post(
        "/mail-admin/acme/domains/acme.test/edit/",
        {"status": "active", "max_mailboxes": "5", "default_quota_mb": "200"},
    )
    assert kept.status_code == 302


def test_it_refuses_a_bad_domain_edit(owner_client, domain):
    response = owner_client.post(
        "/mail-admin/acme/domains/acme.test/edit/", {"status": "bogus", "default_quota_mb": "0"}
    )
    assert response.status_code == 422


def test_it_forbids_a_viewer_to_edit_or_delete(viewer_client, domain):
    assert viewer_client.get("/mail-admin/acme/domains/acme.test/edit/").status_code == 403
    assert viewer_client.post("/mail-admin/acme/domains/acme.test/delete/").status_code == 403
    assert Domain.objects.filter(pk=domain.pk).exists()


def test_it_confirms_before_deleting_and_refuses_a_non_empty_domain(owner_client, mailbox):
    confirm = owner_client.get("/mail-admin/acme/domains/acme.test/delete/")
    assert confirm.status_code == 200 and b"Stop hosting" in confirm.content
    response = owner_client.post("/mail-admin/acme/domains/acme.test/delete/")
    assert response.status_code == 409
    assert b"remove them first" in response.content


def test_it_deletes_an_empty_domain(owner_client, domain):
    response = owner_client.post("/mail-admin/acme/domains/acme.test/delete/")
    assert response.status_code == 302
    assert not Domain.objects.filter(pk=domain.pk).exists()


def test_it_shows_the_domains_sending_limits_and_use_as_the_node_counts(viewer_client, domain,
                                                                        tmp_path):
    page = viewer_client.get("/mail-admin/acme/domains/acme.test/").content.decode()
    assert "No sending limits are set" in page
    domain.node.state_dir = str(tmp_path)
    domain.node.save(update_fields=["state_dir"])
    quota = SendingQuota.objects.create(organisation=domain.organisation, hourly=5,
                                        max_queued=3, login_hourly=2)
    limits = tuple(getattr(quota, name) for name in quotas.LIMIT_COLUMNS[2:])
    outbound.apply(tmp_path, outbound.OutboundSnap(
        limits=frozenset({("acme.test", quota.scope, *limits)})))
    quotas.charge(tmp_path / quotas.QUOTAS_DB, "news@acme.test", 1, queue_id="Q1")
    page = viewer_client.get("/mail-admin/acme/domains/acme.test/").content.decode()
    assert "Sending limits and use" in page and "Organisation (all its domains)" in page
    assert "1 of 5" in page and "1 of 3" in page and "2 / —" in page
