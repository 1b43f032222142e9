"""The operator's mailbox list at any size: next/previous by cursor, a count that says when
it is capped, a domain filter that does not list thousands of domains."""

import re

from mailboxes import views
from tests.factories import DomainFactory, MailboxFactory

BASE = "/mail-admin/acme/mailboxes/"


def addresses(body: str) -> list[str]:
    return re.findall(r'data-label="Address"><a [^>]*>([^<]+)</a>', body)


def link(body: str, rel: str) -> str | None:
    found = re.search(rf'href="(\?[^"]*)" rel="{rel}"', body)
    return found and found.group(1).replace("&amp;", "&")


def test_it_pages_forward_and_back_by_cursor(owner_client, mailbox, settings):
    settings.MAILHOST_PAGE_SIZE = 2
    for name in ("bob", "carl", "dora", "emil"):
        MailboxFactory(domain=mailbox.domain, local_part=name)

    first = owner_client.get(BASE).content.decode()
    assert addresses(first) == ["anna@acme.test", "bob@acme.test"]
    assert "5 in all" in first and link(first, "prev") is None
    second = owner_client.get(BASE + link(first, "next")).content.decode()
    assert addresses(second) == ["carl@acme.test", "dora@acme.test"]
    third = owner_client.get(BASE + link(second, "next")).content.decode()
    assert addresses(third) == ["emil@acme.test"] and link(third, "next") is None
    back = owner_client.get(BASE + link(third, "prev")).content.decode()
    assert addresses(back) == ["carl@acme.test", "dora@acme.test"]
    start = owner_client.get(BASE + link(back, "prev")).content.decode()
    assert addresses(start) == ["anna@acme.test", "bob@acme.test"]


def test_it_keeps_the_filters_across_pages_and_says_when_the_count_is_capped(
    owner_client, mailbox, settings, monkeypatch
):
    settings.MAILHOST_PAGE_SIZE = 1
    monkeypatch.setattr("mailhost.keyset.COUNT_CAP", 1)
    for name in ("bob", "zeda", "zedb"):
        MailboxFactory(domain=mailbox.domain, local_part=name, display_name=name)
    first = owner_client.get(BASE + "?q=zed").content.decode()
    assert addresses(first) == ["zeda@acme.test"] and "More than 1 in all" in first
    second = owner_client.get(BASE + link(first, "next")).content.decode()
    assert addresses(second) == ["zedb@acme.test"] and link(second, "next") is None


def test_it_refuses_a_made_up_cursor(owner_client, mailbox):
    assert owner_client.get(BASE + "?after=nonsense").status_code == 422


def test_it_offers_a_typed_domain_filter_once_there_are_many_domains(
    owner_client, mailbox, monkeypatch
):
    body = owner_client.get(BASE).content.decode()
    assert '<select id="mdomain"' in body
    monkeypatch.setattr(views, "DOMAIN_CHOICES", 1)
    DomainFactory(organisation=mailbox.domain.organisation, name="second.test")
    body = owner_client.get(BASE).content.decode()
    assert '<select id="mdomain"' not in body and '<input id="mdomain"' in body
    filtered = owner_client.get(BASE + "?domain=acme.test").content.decode()
    assert addresses(filtered) == ["anna@acme.test"]


def test_its_domain_choices_show_each_name_as_people_read_it(owner_client, mailbox):
    DomainFactory(organisation=mailbox.domain.organisation, name="xn--bcher-kva.test")
    body = owner_client.get(BASE).content.decode()
    assert '<option value="xn--bcher-kva.test">bücher.test</option>' in body
    assert '<option value="acme.test" selected>' not in body
    filtered = owner_client.get(BASE + "?domain=acme.test").content.decode()
    assert '<option value="acme.test" selected>acme.test</option>' in filtered


def test_its_rows_show_address_name_status_quota_and_creation(owner_client, mailbox):
    waiting = DomainFactory(organisation=mailbox.domain.organisation, name="later.test",
                            verified_at=None, verification_method="")
    MailboxFactory(domain=waiting, local_part="zoe", display_name="Zoe Z", quota_mb=512,
                   status="suspended")
    body = owner_client.get(BASE).content.decode()
    row = body[body.index("zoe@later.test"):].split("</tr>")[0]
    assert "Zoe Z" in row and "512 MB" in row and "Suspended" in row
    assert "Waiting for domain verification" in row
    assert f"{mailbox.created_at.day} " in row  # "j M Y"
    assert 'href="/mail-admin/acme/mailboxes/zoe@later.test/"' in body
