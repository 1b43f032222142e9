import pytest

from mailboxes import services
from mailboxes.models import Alias, Mailbox
from mailhost.errors import Conflict, Invalid
from mailhost.passwords import verify_password
from nodes.models import MailNode, NodeChange
from tenants.access import SYSTEM
from tenants.models import AuditEvent
from tests.factories import DomainFactory, MailboxFactory, OrganisationFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def domain():
    return DomainFactory(name="example.test")


def test_it_creates_a_mailbox_with_a_generated_password_shown_once(domain):
    mailbox, generated = services.mailbox_create(actor=SYSTEM, domain=domain, local_part="Alice")
    assert mailbox.address == "alice@example.test"
    assert verify_password(generated, mailbox.password_hash)
    assert generated not in str(AuditEvent.objects.values_list("before", "after"))


def test_it_records_an_audit_event_and_a_node_change_per_write(domain):
    mailbox, _ = services.mailbox_create(actor=SYSTEM, domain=domain, local_part="alice")
    services.mailbox_set_status(actor=SYSTEM, mailbox=mailbox, status="suspended")
    actions = list(AuditEvent.objects.order_by("id").values_list("action", flat=True))
    assert actions == ["mailbox.create", "mailbox.status"]
    event = AuditEvent.objects.get(action="mailbox.status")
    assert event.before["status"] == "active" and event.after["status"] == "suspended"
    node = MailNode.objects.get()
    assert node.desired_revision == 2
    assert list(NodeChange.objects.values_list("revision", "kind")) == [
        (1, "mailbox"),
        (2, "mailbox"),
    ]
    mailbox.refresh_from_db()
    assert mailbox.revision == 2


def test_it_writes_nothing_when_nothing_changed(domain):
    mailbox = MailboxFactory(domain=domain)
    services.mailbox_set_status(actor=SYSTEM, mailbox=mailbox, status="active")
    services.mailbox_update(actor=SYSTEM, mailbox=mailbox, quota_mb=mailbox.quota_mb)
    assert not AuditEvent.objects.exists()
    assert not NodeChange.objects.exists()


def test_it_keeps_one_address_one_thing(domain):
    services.mailbox_create(actor=SYSTEM, domain=domain, local_part="sales", password="x" * 12)
    with pytest.raises(Conflict, match="already a mailbox"):
        services.alias_create(
            actor=SYSTEM, domain=domain, local_part="sales", destinations=["a@b.test"]
        )
    services.alias_create(actor=SYSTEM, domain=domain, local_part="info", destinations=["a@b.test"])
    with pytest.raises(Conflict, match="already an alias"):
        services.mailbox_create(actor=SYSTEM, domain=domain, local_part="info", password="x" * 12)


def test_it_refuses_bad_input_naming_the_field_and_writes_nothing(domain):
    cases = [
        (
            lambda: services.mailbox_create(actor=SYSTEM, domain=domain, local_part="a:b"),
            "local_part",
        ),
        (
            lambda: services.mailbox_create(
                actor=SYSTEM, domain=domain, local_part="ok", password="short"
            ),
            "password",
        ),
        (
            lambda: services.mailbox_create(
                actor=SYSTEM, domain=domain, local_part="ok", quota_mb=0
            ),
            "quota_mb",
        ),
        (
            lambda: services.mailbox_create(
                actor=SYSTEM, domain=domain, local_part="ok", display_name="two\nlines"
            ),
            "display_name",
        ),
        (
            lambda: services.alias_create(
                actor=SYSTEM,
                domain=domain,
                local_part="x",
                destinations=["fine@a.test", "bad|dest@a.test"],
            ),
            "destinations",
        ),
        (
            lambda: services.alias_create(
                actor=SYSTEM, domain=domain, local_part="x", destinations=[]
            ),
            "destinations",
        ),
        (
            lambda: services.domain_create(
                actor=SYSTEM, organisation=domain.organisation, name="../etc"
            ),
            "name",
        ),
    ]
    for call, field in cases:
        with pytest.raises(Invalid) as excinfo:
            call()
        assert excinfo.value.field == field
    assert not Mailbox.objects.exists() and not Alias.objects.exists()
    assert not AuditEvent.objects.exists() and not NodeChange.objects.exists()


def test_it_enforces_the_domains_mailbox_limit(domain):
    domain.max_mailboxes = 1
    domain.save()
    services.mailbox_create(actor=SYSTEM, domain=domain, local_part="one", password="x" * 12)
    with pytest.raises(Conflict, match="limit of 1"):
        services.mailbox_create(actor=SYSTEM, domain=domain, local_part="two", password="x" * 12)


def test_it_renames_without_changing_the_mail_home(domain):
    mailbox = MailboxFactory(domain=domain, local_part="old")
    home = mailbox.home_id
    services.mailbox_rename(actor=SYSTEM, mailbox=mailbox, local_part="new")
    mailbox.refresh_from_db()
    assert (mailbox.local_part, mailbox.home_id) == ("new", home)


def test_it_soft_deletes_and_restores_unless_the_address_was_reused(domain):
    mailbox = MailboxFactory(domain=domain, local_part="bob")
    services.mailbox_delete(actor=SYSTEM, mailbox=mailbox)
    assert mailbox.deleted_at is not None
    services.mailbox_restore(actor=SYSTEM, mailbox=mailbox)
    assert mailbox.deleted_at is None
    services.mailbox_delete(actor=SYSTEM, mailbox=mailbox)
    services.mailbox_create(actor=SYSTEM, domain=domain, local_part="bob", password="x" * 12)
    with pytest.raises(Conflict, match="already a mailbox"):
        services.mailbox_restore(actor=SYSTEM, mailbox=mailbox)


def test_it_creates_a_domain_with_an_active_dkim_key_and_refuses_duplicates():
    org = OrganisationFactory()
    domain = services.domain_create(actor=SYSTEM, organisation=org, name="Bücher.example")
    assert domain.name == "xn--bcher-kva.example"
    key = domain.dkim_keys.get()
    assert key.state == "active" and key.txt_value.startswith("v=DKIM1; k=rsa; p=MII")
    with pytest.raises(Conflict, match="already a domain of this organisation"):
        services.domain_create(actor=SYSTEM, organisation=org, name="bücher.EXAMPLE.")
    # Another organisation gets a claim of its own, which never goes live while org's holds.
    claim = services.domain_create(
        actor=SYSTEM, organisation=OrganisationFactory(), name="bücher.EXAMPLE."
    )
    assert domain.is_verified and not claim.is_verified


def test_it_refuses_to_delete_a_domain_that_still_has_mailboxes(domain):
    MailboxFactory(domain=domain)
    with pytest.raises(Conflict, match="still has 1 mailbox"):
        services.domain_delete(actor=SYSTEM, domain=domain)


def test_it_makes_a_catch_all_with_an_empty_local_part(domain):
    alias = services.alias_create(
        actor=SYSTEM, domain=domain, local_part="*", destinations=["Someone@Elsewhere.test"]
    )
    assert alias.address == "@example.test"
    assert alias.destinations == ["someone@elsewhere.test"]
    with pytest.raises(Conflict, match="already has a catch-all"):
        services.alias_create(actor=SYSTEM, domain=domain, local_part="", destinations=["a@b.test"])


def test_it_recreates_a_mailbox_from_a_backup_with_its_password_hash(domain):
    stored = MailboxFactory(domain=domain, local_part="gone").password_hash
    Mailbox.objects.filter(domain=domain).delete()

    mailbox = services.mailbox_recreate(actor=SYSTEM, domain=domain, local_part="gone",
                                        password_hash=stored, display_name="Gone", quota_mb=5)

    assert (mailbox.password_hash, mailbox.quota_mb, mailbox.display_name) == (stored, 5, "Gone")
    assert AuditEvent.objects.filter(action="mailbox.recreate").count() == 1
    assert NodeChange.objects.filter(kind="mailbox", object_id=mailbox.pk).exists()
    with pytest.raises(Conflict):
        services.mailbox_recreate(actor=SYSTEM, domain=domain, local_part="gone",
                                  password_hash=stored)
    with pytest.raises(Invalid, match="not a stored password hash"):
        services.mailbox_recreate(actor=SYSTEM, domain=domain, local_part="plain",
                                  password_hash="hunter2")
    assert Mailbox.objects.count() == 1
