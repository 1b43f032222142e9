"""The domain page says where postmaster@ and abuse@ go; its settings page changes it."""

import pytest

from mailboxes.models import Domain
from tests.factories import AliasFactory, MailboxFactory

pytestmark = pytest.mark.django_db
EDIT = "/mail-admin/acme/domains/acme.test/edit/"
FORM = {"status": "active", "default_quota_mb": "100"}


def test_it_shows_the_automatic_target_and_a_mailbox_of_the_same_name(owner_client, owner,
                                                                      domain):
    boss = MailboxFactory(domain=domain, local_part="boss")
    owner.email = boss.address  # the first admin has a mailbox here
    owner.save()
    AliasFactory(domain=domain, local_part="abuse", destinations=[boss.address])

    page = owner_client.get("/mail-admin/acme/domains/acme.test/").content.decode()

    assert "<code>postmaster@acme.test</code> →\n" in page
    assert "<code>boss@acme.test</code> (automatic: your first admin" in page
    assert "your own mailbox or alias of that name" in page  # abuse@ is an alias of theirs


def test_it_shows_the_operator_mailbox_or_that_role_mail_is_refused(owner_client, domain,
                                                                    settings):
    page = owner_client.get("/mail-admin/acme/domains/acme.test/").content.decode()
    assert "nowhere: refused" in page and "Choose a mailbox for them" in page
    settings.MAILHOST_OPERATOR_MAILBOX = "desk@provider.test"
    page = owner_client.get("/mail-admin/acme/domains/acme.test/").content.decode()
    assert "<code>desk@provider.test</code> (the mail service's operator mailbox)" in page


def test_it_changes_the_target_and_keeps_it_when_the_field_is_not_sent(owner_client, mailbox):
    response = owner_client.post(EDIT, FORM | {"role_target": mailbox.address})
    assert response.status_code == 302
    assert Domain.objects.get(pk=mailbox.domain_id).role_target == mailbox.address
    assert "your choice" in owner_client.get("/mail-admin/acme/domains/acme.test/").content.decode()

    assert owner_client.post(EDIT, FORM).status_code == 302  # e.g. an older form
    assert Domain.objects.get(pk=mailbox.domain_id).role_target == mailbox.address


def test_it_says_why_a_target_is_refused(owner_client, domain):
    response = owner_client.post(EDIT, FORM | {"role_target": "nobody@acme.test"})
    assert response.status_code == 422
    assert "not a mailbox or alias of this organisation" in response.content.decode()
    assert Domain.objects.get(pk=domain.pk).role_target == ""


def test_it_forbids_a_viewer_to_choose(viewer_client, mailbox):
    response = viewer_client.post(EDIT, FORM | {"role_target": mailbox.address})
    assert response.status_code == 403
    assert Domain.objects.get(pk=mailbox.domain_id).role_target == ""
