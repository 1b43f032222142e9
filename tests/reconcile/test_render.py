import pytest

from mailhost.backend.model import AliasSnap, DkimSnap, DomainSnap, MailboxSnap
from mailhost.backend.render import (
    UnsafeValue,
    alias_rows,
    dkim_files,
    domain_rows,
    mailbox_rows,
    sieve_files,
)
from mailhost.backend.sieve import SieveSpec, render_sieve

HOME = "0f0e0d0c-0b0a-4908-8706-050403020100"
HASH = "{BLF-CRYPT}$2b$05$abcdefghijklmnopqrstuuS1x6V0c5Zyt1Z0nG9i0Qm3v8P3l4pDm"


def mailbox(**overrides) -> MailboxSnap:
    values = dict(
        id=7,
        address="alice@example.test",
        password_hash=HASH,
        home_id=HOME,
        quota_mb=2,
        status="active",
        domain_active=True,
        deleted=False,
        app_password_hashes=(HASH,),
    )
    return MailboxSnap(**values | overrides)


def test_it_renders_a_mailbox_row_with_home_quota_and_rights():
    rows = mailbox_rows(mailbox(), "/s")
    assert rows["mailboxes"] == {
        ("mailbox:7", "alice@example.test", HASH, f"/s/mail/{HOME}", 2 * 1024 * 1024, 1, 1)
    }
    assert rows["sender_logins"] == {("mailbox:7", "alice@example.test", "alice@example.test")}
    assert rows["app_passwords"] == {("mailbox:7", "alice@example.test", HASH)}


@pytest.mark.parametrize(
    ("overrides", "can_login", "can_receive"),
    [
        ({"status": "suspended"}, 0, 1),
        ({"status": "disabled"}, 0, 0),
        ({"domain_active": False}, 0, 0),
    ],
)
def test_it_maps_lifecycle_states_to_login_and_delivery_rights(overrides, can_login, can_receive):
    (row,) = mailbox_rows(mailbox(**overrides), "/s")["mailboxes"]
    assert row[-2:] == (can_login, can_receive)
    assert not mailbox_rows(mailbox(**overrides), "/s")["app_passwords"]


def test_it_renders_nothing_for_a_deleted_mailbox():
    rows = mailbox_rows(mailbox(deleted=True), "/s")
    assert not any(rows.values())


def test_it_lets_alias_destinations_send_as_the_alias_but_not_as_a_catch_all():
    alias = AliasSnap(
        id=3,
        address="sales@example.test",
        destinations=("a@example.test", "b@x.test"),
        active=True,
        domain_active=True,
    )
    rows = alias_rows(alias)
    assert rows["aliases"] == {("alias:3", "sales@example.test", "a@example.test,b@x.test")}
    assert {r[2] for r in rows["sender_logins"]} == {"a@example.test", "b@x.test"}
    catch_all = AliasSnap(
        id=4,
        address="@example.test",
        destinations=("a@example.test",),
        active=True,
        domain_active=True,
    )
    assert alias_rows(catch_all)["aliases"] and not alias_rows(catch_all)["sender_logins"]


def test_it_drops_inactive_domains():
    assert domain_rows(DomainSnap(1, "example.test", True))["domains"] == {
        ("domain:1", "example.test")
    }
    assert not domain_rows(DomainSnap(1, "example.test", False))["domains"]


@pytest.mark.parametrize(
    "hostile",
    [
        "a\nb@example.test",
        "a:b@example.test",
        "a|b@example.test",
        "a b@example.test",
        "../x@example.test",
        "a\0@example.test",
        "a@exa mple.test",
        "a@../etc",
        "a@x.test\n",
    ],
)
def test_it_refuses_hostile_addresses_even_if_the_service_layer_was_bypassed(hostile):
    with pytest.raises(UnsafeValue):
        mailbox_rows(mailbox(address=hostile), "/s")
    with pytest.raises(UnsafeValue):
        alias_rows(AliasSnap(1, "ok@example.test", (hostile,), True, True))


@pytest.mark.parametrize(
    ("field", "value"),
    [("home_id", "../../etc"), ("password_hash", "plain"), ("password_hash", HASH + "\nx")],
)
def test_it_refuses_hostile_homes_and_hashes(field, value):
    with pytest.raises(UnsafeValue):
        mailbox_rows(mailbox(**{field: value}), "/s")


@pytest.mark.parametrize(
    ("domain", "selector"),
    [("a/b.test", "s1"), ("x.test", "s1\nx"), ("x.test", "../s"), ("x .test", "s")],
)
def test_it_refuses_hostile_dkim_names(domain, selector):
    with pytest.raises(UnsafeValue):
        dkim_files([DkimSnap(domain, selector, b"key")], "/s")


def test_it_renders_opendkim_tables_sorted_and_deterministic():
    keys = [DkimSnap("b.test", "mh2", b"KB"), DkimSnap("a.test", "mh1", b"KA")]
    files = dkim_files(keys, "/s")
    assert files == dkim_files(list(reversed(keys)), "/s")
    assert files["opendkim/KeyTable"] == (
        b"mh1._domainkey.a.test a.test:mh1:/s/opendkim/keys/a.test.mh1.private\n"
        b"mh2._domainkey.b.test b.test:mh2:/s/opendkim/keys/b.test.mh2.private\n"
    )
    assert files["opendkim/SigningTable"] == (
        b"a.test mh1._domainkey.a.test\nb.test mh2._domainkey.b.test\n"
    )
    assert files["opendkim/keys/a.test.mh1.private"] == b"KA"


def test_it_puts_the_portal_scripts_beside_the_users_own_never_in_their_place():
    spec = SieveSpec("alice@example.test", forward_to=("bob@x.test",), keep_copy=True)
    before, after = f"mail/{HOME}/.mailhost/before.sieve", f"mail/{HOME}/.mailhost/after.sieve"
    files = sieve_files(mailbox(sieve=spec))
    assert set(files) == {before, after}  # never .dovecot.sieve or sieve/: the user's store
    assert files[before] == render_sieve(spec).encode()
    assert b'redirect :copy "bob@x.test"' in files[before] and files[after] is None
    assert sieve_files(mailbox()) == {before: None, after: None}
    assert sieve_files(mailbox(sieve=spec, deleted=True)) == {before: None, after: None}


def test_it_refuses_a_hostile_forwarding_address_in_sieve():
    spec = SieveSpec("alice@example.test", forward_to=('x"; discard; "@x.test',))
    with pytest.raises(UnsafeValue):
        sieve_files(mailbox(sieve=spec))


def test_it_renders_a_bcrypt_hash_that_contains_two_dots():
    """bcrypt's alphabet has '.': the '..' guard for names must not refuse a hash (it did,
    for about one generated password in 80, and then blocked every later apply)."""
    dotted = "{BLF-CRYPT}$2b$05$ab..cdefghijklmnopqrstuuS1x6V0c5Zyt1Z0nG9i0Qm3v8P3l4pDm"
    (row,) = mailbox_rows(mailbox(password_hash=dotted), "/s")["mailboxes"]
    assert row[2] == dotted
