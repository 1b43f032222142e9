"""The relay tables (mailhost/backend/relays.py): keyed by sender domain and next hop, the
strictest TLS mode of a shared relay, and no hostile value reaching a table line."""

from dataclasses import replace

import pytest

from mailhost.backend.config import NodeConfig, render_postfix_main_cf
from mailhost.backend.relays import (
    RELAY_HOSTS,
    RELAY_PASSWORDS,
    RELAY_TLS,
    RelaySnap,
    UnsafeRelay,
    render_relay_files,
)
from tests.backend.test_config_render import CONFIG


def lines(files, path):
    return [line for line in files[path].decode().splitlines() if not line.startswith("#")]


def test_it_keys_relays_by_sender_domain_and_the_default_by_next_hop():
    files = render_relay_files([
        RelaySnap("b.test", "smtp.relay.example", 587, "required", "user-b", "pw:b"),
        RelaySnap("a.test", "10.1.2.3", 2525, "opportunistic"),
        RelaySnap("", "default.relay.example", 465, "verified", "dflt", "secret"),
    ])
    assert lines(files, RELAY_HOSTS) == ["@a.test [10.1.2.3]:2525",
                                         "@b.test [smtp.relay.example]:587"]
    assert lines(files, RELAY_PASSWORDS) == ["[default.relay.example]:465 dflt:secret",
                                             "@b.test user-b:pw:b"]
    assert lines(files, RELAY_TLS) == ["[10.1.2.3]:2525 may",
                                       "[default.relay.example]:465 secure",
                                       "[smtp.relay.example]:587 encrypt"]


def test_a_shared_relay_gets_the_strictest_mode():
    files = render_relay_files([
        RelaySnap("a.test", "smtp.relay.example", 587, "opportunistic"),
        RelaySnap("b.test", "smtp.relay.example", 587, "verified"),
    ])
    assert lines(files, RELAY_TLS) == ["[smtp.relay.example]:587 secure"]


def test_no_relay_renders_three_empty_tables():
    files = render_relay_files([])
    assert sorted(files) == sorted([RELAY_HOSTS, RELAY_PASSWORDS, RELAY_TLS])
    assert all(lines(files, path) == [] for path in files)


@pytest.mark.parametrize("relay", [
    RelaySnap("a.test", "smtp.relay.example\n@b.test [evil.example]:25", 587),
    RelaySnap("a.test", "smtp relay.example", 587),
    RelaySnap("a.test\n@b.test", "smtp.relay.example", 587),
    RelaySnap("a.test", "smtp.relay.example", 587, "required", "user", "pass word"),
    RelaySnap("a.test", "smtp.relay.example", 587, "required", "us:er", "password"),
    RelaySnap("a.test", "smtp.relay.example", 587, "required", "user", "pw\n@b.test x:y"),
    RelaySnap("a.test", "smtp.relay.example", 587, "required", "user", ""),
    RelaySnap("a.test", "smtp.relay.example", 70000),
    RelaySnap("a.test", "smtp.relay.example", 587, "none"),
])
def test_it_refuses_values_that_would_break_a_table(relay):
    with pytest.raises(UnsafeRelay):
        render_relay_files([relay])


def test_the_default_relay_and_lifetime_reach_main_cf(settings):
    settings.MAILHOST_RELAY_DEFAULT_HOST = "smtp.isp.example"
    settings.MAILHOST_RELAY_DEFAULT_PORT = 465
    settings.SMTP_OUTBOUND_TTL_SECS = 3600
    cfg = NodeConfig.from_settings(state_dir=CONFIG.state_dir, ports=CONFIG.ports)
    main_cf = render_postfix_main_cf(cfg).splitlines()
    assert "relayhost = [smtp.isp.example]:465" in main_cf
    assert "maximal_queue_lifetime = 3600s" in main_cf
    assert "bounce_queue_lifetime = 3600s" in main_cf
    for bad in ({"default_relay": "evil host:25"}, {"default_relay": "x.example:0"},
                {"queue_lifetime_seconds": 5}):
        with pytest.raises(ValueError):
            replace(CONFIG, **bad)
