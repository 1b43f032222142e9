"""The ban store's rules, on a real SQLite file, with an explicit clock (no sleeping)."""

import json
import threading
import urllib.error
import urllib.request

import pytest

from mailhost.backend.banpolicy import PolicyConfig, PolicyServer
from mailhost.backend.bans import BanPolicy, BanStore, normalise_ip

POLICY = BanPolicy(failures=3, window_seconds=60, ban_seconds=120, account_failures=4,
                   account_delay_seconds=2, exempt=("10.1.0.0/16",))


@pytest.fixture
def store(tmp_path):
    store = BanStore(tmp_path / "bans.sqlite", POLICY)
    store.ensure_schema()
    return store


def fail(store, ip, account="a@x.test", at=1000.0, times=1, service="imap"):
    return [store.record_failure(ip=ip, account=account, service=service, now=at + i)
            for i in range(times)][-1]


def test_it_bans_at_the_threshold_within_the_window(store):
    assert fail(store, "192.0.2.1", times=2) is None
    ban = fail(store, "192.0.2.1", at=1010, service="smtp")
    assert ban.ip == "192.0.2.1" and ban.until == 1010 + 120 and ban.services == ("imap", "smtp")
    assert store.decide(ip="192.0.2.1", account="b@y.test", now=1011).status == -1
    assert store.decide(ip="192.0.2.2", account="b@y.test", now=1011).status == 0


def test_it_forgets_failures_older_than_the_window(store):
    fail(store, "192.0.2.1", times=2, at=1000)
    assert fail(store, "192.0.2.1", at=1000 + 61 + 1) is None


def test_it_ends_a_ban_by_itself_and_counts_afresh(store):
    fail(store, "192.0.2.1", times=3)
    assert store.ban("192.0.2.1", now=1002 + 119) is not None
    assert store.ban("192.0.2.1", now=1002 + 121) is None
    assert fail(store, "192.0.2.1", at=1002 + 121) is None  # the earlier ones are spent


def test_it_lifts_a_ban_and_its_failures_no_longer_count(store):
    fail(store, "192.0.2.1", times=3)
    assert store.lift("192.0.2.1", now=1005).ip == "192.0.2.1"
    assert store.decide(ip="192.0.2.1", account="a@x.test", now=1005).status == 0
    assert fail(store, "192.0.2.1", at=1006) is None
    assert store.lift("192.0.2.1", now=1007) is None


def test_it_never_counts_or_bans_exempt_networks(store):
    assert fail(store, "10.1.2.3", times=10) is None
    assert store.decide(ip="10.1.2.3", account="a@x.test", now=1020).status == 0


def test_it_throttles_an_account_without_ever_refusing_it(store):
    for i, ip in enumerate(("192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4")):
        fail(store, ip, account="victim@x.test", at=1000 + i)
    decision = store.decide(ip="198.51.100.7", account="Victim@X.test", now=1005)
    assert decision.status == 2  # a delay in seconds, not a refusal
    assert [t.account for t in store.throttled_accounts(now=1005)] == ["victim@x.test"]
    assert store.decide(ip="198.51.100.7", account="victim@x.test", now=1000 + 3 + 61).status == 0


def test_it_keys_ipv4_mapped_addresses_as_ipv4():
    assert normalise_ip("::ffff:192.0.2.1") == "192.0.2.1"
    assert normalise_ip("2001:DB8::0:1") == "2001:db8::1"
    with pytest.raises(ValueError):
        normalise_ip("192.0.2.1; DROP TABLE bans")


def test_it_ignores_reports_without_the_key_dovecot_sends(tmp_path):
    """A local process that does not hold the key cannot get an address banned."""
    header = tmp_path / "api-header"
    header.write_text("X-API-Key:s3cret")
    config = tmp_path / "banpolicy.json"
    config.write_text(json.dumps({
        "store": str(tmp_path / "bans.sqlite"), "listen": ["127.0.0.1", 0],
        "key_file": str(header), "pid_file": str(tmp_path / "pid"), "policy": POLICY.as_dict(),
    }))
    policy = PolicyConfig(config)
    policy.store.ensure_schema()
    server = PolicyServer(policy)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/?command=report"
    body = json.dumps({"remote": "192.0.2.9", "login": "a@x.test", "success": False}).encode()
    try:
        for key in ("", "wrong", "s3cret-but-longer"):
            request = urllib.request.Request(url, body, {"X-API-Key": key})
            with pytest.raises(urllib.error.HTTPError) as refused:
                for _ in range(POLICY.failures):
                    urllib.request.urlopen(request, timeout=5)  # noqa: S310
            assert refused.value.code == 403
        assert policy.store.bans() == []
        for _ in range(POLICY.failures):
            request = urllib.request.Request(url, body, {"X-API-Key": "s3cret"})
            urllib.request.urlopen(request, timeout=5)  # noqa: S310
        assert [b.ip for b in policy.store.bans()] == ["192.0.2.9"]
    finally:
        server.shutdown()
        server.server_close()
