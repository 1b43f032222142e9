"""GET /mailboxes by cursor (keyset pagination) and its capped count."""

import pytest

from mailhost.keyset import encode_cursor
from tests.factories import DomainFactory, MailboxFactory

pytestmark = pytest.mark.django_db


def walk(client, **params) -> tuple[list[str], list[dict]]:
    addresses, pages, cursor = [], [], None
    while True:
        query = {"limit": 3, **params} | ({"cursor": cursor} if cursor else {})
        page = client.get("/mailboxes", query).json()
        pages.append(page)
        addresses += [m["address"] for m in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            return addresses, pages


def test_it_walks_every_mailbox_once_in_address_order_by_cursor(tenant):
    second = DomainFactory(organisation=tenant.organisation, name="acme.example")
    for name in ("carol", "bob", "dave", "erin"):
        MailboxFactory(domain=tenant.domain, local_part=name)
        MailboxFactory(domain=second, local_part=name)

    addresses, pages = walk(tenant.rw)

    expected = [f"{n}@acme.example" for n in ("bob", "carol", "dave", "erin")] + [
        f"{n}@acme.test" for n in ("alice", "bob", "carol", "dave", "erin")
    ]  # by domain, then local part
    assert addresses == expected  # the deleted gone@ is not listed; nothing twice or missed
    assert len(pages) == 3 and {p["count"] for p in pages} == {9}
    assert not any(p["count_capped"] for p in pages)
    filtered, _ = walk(tenant.rw, domain="acme.example")
    assert filtered == expected[:4]


def test_it_says_when_the_count_is_capped(tenant, monkeypatch):
    monkeypatch.setattr("mailhost.keyset.COUNT_CAP", 2)
    for name in ("bob", "carol"):
        MailboxFactory(domain=tenant.domain, local_part=name)
    page = tenant.rw.get("/mailboxes", {"limit": 1}).json()
    assert (page["count"], page["count_capped"]) == (2, True)
    assert [m["local_part"] for m in page["items"]] == ["alice"]


def test_it_refuses_a_cursor_it_did_not_give_out(tenant):
    made_up = [[], ["a", "b"], [1, "b", 2], ["a", "b", "3"], ["a\u0000", "b", 3], ["a", "b", True]]
    cursors = ["nonsense", "é", *(encode_cursor(values) for values in made_up)]
    for cursor in cursors:
        response = tenant.rw.get("/mailboxes", {"cursor": cursor})
        assert response.status_code == 422 and response.json()["field"] == "cursor", cursor
