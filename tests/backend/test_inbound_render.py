"""The inbound renderers: Rspamd's settings map, the resolver's local data, and the config of
a local-mode resolver. Pure: compared with golden files (tests/backend/golden/inbound/)."""

import os
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from mailhost.backend.config import inbound_config_from_settings
from mailhost.backend.inbound import (
    InboundConfig,
    InboundPolicySnap,
    RedisTarget,
    SenderRule,
    UnsafeInboundValue,
    render_local_data,
    render_rspamd_conf,
    render_rspamd_local,
    render_settings_map,
    render_unbound_conf,
)

GOLDEN = Path(__file__).parent / "golden" / "inbound"
POLICIES = [
    InboundPolicySnap("strict.example", require_spf=True, require_dmarc=True, junk_score=4.5,
                      reject_score=9.0),
    InboundPolicySnap("quiet.example", greylisting=False, rules=(
        SenderRule("allow", "boss@partner.example", "ceo@quiet.example"),
        SenderRule("block", "@spam.example"),
    )),
    InboundPolicySnap("default.example"),  # all defaults: no rule at all
]


def _golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert path.exists(), f"no golden file {name}: run with UPDATE_GOLDEN=1"
    assert text == path.read_text()


def test_it_renders_the_settings_map():
    _golden("settings.conf", render_settings_map(InboundConfig(), POLICIES))


def test_it_renders_a_local_mode_resolver():
    cfg = InboundConfig(resolver_mode="local")
    _golden("unbound-local.conf", render_unbound_conf(Path("/srv/mh/node"), 2553, cfg))


def test_it_forwards_to_upstreams_in_recursive_mode():
    cfg = InboundConfig(resolver_upstreams=("192.0.2.53", "198.51.100.53@5353"))
    text = render_unbound_conf(Path("/srv/mh/node"), 2553, cfg)
    assert "forward-addr: 192.0.2.53\n" in text and "forward-addr: 198.51.100.53@5353\n" in text
    assert 'local-zone: "." static' not in text


def test_it_renders_deterministically_whatever_the_order():
    assert render_settings_map(InboundConfig(), POLICIES) == render_settings_map(
        InboundConfig(), list(reversed(POLICIES)))


@pytest.mark.parametrize("policy", [
    InboundPolicySnap('evil.example"; reject = 0; "'),
    InboundPolicySnap("ok.example", rules=(SenderRule("allow", 'a"@x.example'),)),
    InboundPolicySnap("ok.example", rules=(SenderRule("allow", "a@x.example\n}"),)),
    InboundPolicySnap("ok.example", rules=(SenderRule("allow", "a@b.example", "c@other.example"),)),
    InboundPolicySnap("ok.example", rules=(SenderRule("permit", "a@b.example"),)),
])
def test_it_refuses_values_that_would_break_the_map(policy):
    with pytest.raises(UnsafeInboundValue):
        render_settings_map(InboundConfig(), [policy])


@pytest.mark.parametrize("line", [
    "x.example. 300 IN TXT \"it's\"",
    "x.example. 300 IN TXT \"a\"\nlocal-zone: \".\" transparent",
    "x.example. 300 IN TXT \"a\\\\\"",
])
def test_it_refuses_local_data_that_could_escape_its_quotes(line):
    with pytest.raises(UnsafeInboundValue):
        render_local_data([line])


def test_it_quotes_txt_local_data():
    text = render_local_data(['x.example. 300 IN TXT "v=spf1 -all"'])
    assert "  local-data: 'x.example. 300 IN TXT \"v=spf1 -all\"'\n" in text


@pytest.mark.parametrize("change", [
    {"resolver_mode": "both"},
    {"resolver_upstreams": ("dns.example",)},
    {"junk_score": 20.0},
    {"greylist_score": 7.0},
    {"max_recipients": 0},
    {"xclient_hosts": ("not an address",)},
    {"history_rows": 0},
    {"bayes_expire_days": -1},
])
def test_it_refuses_an_inbound_config_that_would_break_the_files(change):
    with pytest.raises(ValueError):
        replace(InboundConfig(), **change)


def test_it_reads_rspamds_redis_from_a_url():
    assert RedisTarget.from_url("redis://:s3cret@127.0.0.1:6380/4") == RedisTarget(
        "127.0.0.1", 6380, 4, "s3cret")
    assert RedisTarget.from_url("") == RedisTarget()


def test_it_reports_broken_inbound_settings_as_a_system_check(settings):
    from mailhost.checks import check_inbound_settings

    settings.MAILHOST_RESOLVER_MODE = "sideways"
    (error,) = check_inbound_settings(None)
    assert error.id == "mailhost.E030" and "resolver_mode" in error.msg
    settings.MAILHOST_RESOLVER_MODE = "local"
    settings.MAILHOST_INBOUND_JUNK_SCORE, settings.MAILHOST_INBOUND_REJECT_SCORE = 9, 8
    assert [e.id for e in check_inbound_settings(None)] == ["mailhost.E030"]


def _rspamd_reads(tmp_path: Path, cfg: InboundConfig, section: str) -> str:
    """What Rspamd itself makes of the rendered files: `rspamadm configdump` of a section."""
    from mailhost.backend.stack import RSPAMD_CONFDIR

    (tmp_path / "rspamd/local.d").mkdir(parents=True, exist_ok=True)
    (tmp_path / "rspamd/rspamd.conf").write_text(render_rspamd_conf(tmp_path))
    for rel, text in render_rspamd_local(tmp_path, "mail.test", 2553, cfg).items():
        (tmp_path / "rspamd" / rel).write_text(text)
    out = subprocess.run(
        ["rspamadm", f"--var=CONFDIR={RSPAMD_CONFDIR}", f"--var=LOCAL_CONFDIR={tmp_path}/rspamd",
         f"--var=DBDIR={tmp_path}/rspamd/db", f"--var=RUNDIR={tmp_path}",
         f"--var=LOGDIR={tmp_path}", "configdump", "-c", f"{tmp_path}/rspamd/rspamd.conf",
         section], capture_output=True, text=True, check=True, timeout=120)
    return out.stdout


def test_rspamds_history_and_bayes_retention_come_from_the_settings(settings, tmp_path):
    settings.MAILHOST_RSPAMD_REDIS_URL = "redis://127.0.0.1:6379/3"
    settings.MAILHOST_RSPAMD_HISTORY_ROWS = 42
    settings.MAILHOST_RSPAMD_BAYES_EXPIRE_DAYS = 7
    cfg = inbound_config_from_settings(settings)
    assert "nrows = 42;" in _rspamd_reads(tmp_path, cfg, "history_redis")
    assert "expire = 604800;" in _rspamd_reads(tmp_path, cfg, "classifier")
    never = replace(cfg, bayes_expire_days=0)  # bayes_expiry: a negative expire persists tokens
    assert "expire = -1;" in _rspamd_reads(tmp_path, never, "classifier")
    defaults = replace(InboundConfig(), redis=cfg.redis)
    assert "nrows = 200;" in _rspamd_reads(tmp_path, defaults, "history_redis")
    assert "expire = 8640000;" in _rspamd_reads(tmp_path, defaults, "classifier")
