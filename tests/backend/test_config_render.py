"""Golden-file tests for the node's static configuration.

Regenerate the goldens (golden/node/) after an intended change with
`UPDATE_GOLDEN=1 pytest tests/backend/test_config_render.py`,
then read the diff: it is the change every node will get.
"""

import os
import re
from dataclasses import replace
from pathlib import Path

import pytest

from mailhost.backend.config import NodeConfig, render_static_files
from mailhost.backend.edge import EdgeConfig, EdgeSite, UnsafeEdgeValue, render_edge_sites

GOLDEN = Path(__file__).parent / "golden" / "node"  # golden/ is shared with other renderers
STATE = Path("/srv/mh/node")
CONFIG = NodeConfig(
    state_dir=STATE,
    hostname="mail.example.test",
    bind_address="127.0.0.1",
    ports={
        "smtp": 2525,
        "submission": 2587,
        "submissions": 2465,
        "imap": 2143,
        "imaps": 2993,
        "managesieve": 24190,
        "internal": 2526,
        "authpolicy": 2527,
        "resolver": 2553,
        "http": 2080,
        "https": 2443,
        "dav": 5232,
        "forward": 2528,
        "srs": 2529,
        "srs_reverse": 2530,
        "stats": 2531,
        "doveadm": 2532,
    },
    doveadm_password="golden-doveadm-password",
    dev=True,
    dkim_require_safe_keys=True,
    report_local_parts=("dmarc-reports", "tlsrpt-reports"),
    edge=EdgeConfig(
        portal_names=("portal.example.test",),
        headers=(("Strict-Transport-Security", "max-age=31536000; includeSubDomains"),
                 ("X-Frame-Options", "DENY"),
                 ("Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'")),
        webmail=True,
    ),
)
RENDERED = render_static_files(CONFIG)
# An absolute path in a config line: not preceded by a word char, '.', ']' (CIDR), '~' (home)
# or ':'/'/' (a URL's "//").
_ABSOLUTE_PATH = re.compile(r"(?<![\w.\]~:/])/[\w./-]+")
# Files of Debian's packages the inbound config names (the DNSSEC root anchor, the learning
# pipes' shell and rspamc): the same on every node.
SYSTEM_PATHS = {"/usr/share/dns/root.key", "/bin/sh", "/usr/bin/rspamc", "/etc/nginx/mime.types",
                "/etc/ssl/certs", "/etc/nginx/fastcgi_params"}
# URL paths the edge routes (not files).
URL_PATHS = {"/.well-known/acme-challenge/", "/.edge/unavailable", "/cert.pem",  # + a glob tail
             "/webmail", "/webmail/", "/webmail/index.php", "/mailbox/password/",
             "/dav", "/dav/", "/.well-known/caldav", "/.well-known/carddav",
             "/metrics"}  # Dovecot stats' OpenMetrics path


@pytest.mark.parametrize("relative", sorted(RENDERED))
def test_it_matches_the_golden_file(relative):
    golden = GOLDEN / relative
    if os.environ.get("UPDATE_GOLDEN") == "1":
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_bytes(RENDERED[relative])
    assert golden.exists(), f"no golden file for {relative}: run with UPDATE_GOLDEN=1"
    assert RENDERED[relative].decode() == golden.read_text()


def test_it_has_no_stale_golden_files():
    goldens = {str(p.relative_to(GOLDEN)) for p in GOLDEN.rglob("*") if p.is_file()}
    assert goldens == set(RENDERED)


def test_it_renders_deterministically():
    assert render_static_files(CONFIG) == RENDERED
    assert list(RENDERED) == sorted(RENDERED)


def test_it_depends_on_the_state_dir_only_where_it_names_it():
    other = render_static_files(replace(CONFIG, state_dir=Path("/var/lib/mh2")))
    assert other == {
        path: data.replace(str(STATE).encode(), b"/var/lib/mh2") for path, data in RENDERED.items()
    }


def test_it_names_no_host_path_but_the_state_dir():
    for relative, data in RENDERED.items():
        for path in _ABSOLUTE_PATH.findall(data.decode()):
            known = SYSTEM_PATHS | URL_PATHS
            assert path == str(STATE) or path.startswith(f"{STATE}/") or path in known, (
                f"{relative}: {path}"
            )


def test_it_includes_every_static_file_of_the_stack():
    assert {
        "postfix/main.cf",
        "postfix/master.cf",
        "postfix/sqlite-domains.cf",
        "postfix/sqlite-mailboxes.cf",
        "postfix/sqlite-aliases.cf",
        "postfix/sqlite-sender-logins.cf",
        "postfix/sqlite-recipient-access.cf",
        "dovecot/dovecot.conf",
        "dovecot/sql-passdb.conf.ext",
        "dovecot/sql-userdb.conf.ext",
        "opendkim/opendkim.conf",
        "opendkim/TrustedHosts",
    } <= set(RENDERED)
    slots = [p for p in RENDERED if p.startswith("dovecot/sql-app-passdb-")]
    assert len(slots) == CONFIG.app_password_slots


def test_it_keeps_the_login_penalty_in_production():
    dev = RENDERED["dovecot/dovecot.conf"].decode()
    prod_config = replace(CONFIG, dev=False, edge=replace(CONFIG.edge, webmail=False))
    prod = render_static_files(prod_config)["dovecot/dovecot.conf"].decode()
    for cure in ("login_trusted_networks", "auth_failure_delay = 0", "anvil-auth-penalty"):
        assert cure in dev
        assert cure not in prod


def test_it_trusts_only_the_webmail_on_the_node_to_name_the_client_in_production():
    prod = render_static_files(replace(CONFIG, dev=False))["dovecot/dovecot.conf"].decode()
    assert "login_trusted_networks = 127.0.0.1/32 ::1/128\n" in prod
    for cure in ("auth_failure_delay = 0", "anvil-auth-penalty"):
        assert cure not in prod


def test_it_relaxes_safe_keys_only_when_told():
    relaxed = render_static_files(replace(CONFIG, dkim_require_safe_keys=False))
    assert b"RequireSafeKeys         true" in RENDERED["opendkim/opendkim.conf"]
    assert b"RequireSafeKeys         false" in relaxed["opendkim/opendkim.conf"]


def test_it_uses_the_configured_ports_and_address():
    cfg = replace(CONFIG, bind_address="192.0.2.7", ports={**CONFIG.ports, "smtp": 25})
    files = render_static_files(cfg)
    assert b"\n192.0.2.7:25 " in files["postfix/master.cf"]
    assert b"127.0.0.1:2526 " in files["postfix/master.cf"]  # re-injection stays on loopback
    assert b"listen = 192.0.2.7\n" in files["dovecot/dovecot.conf"]
    assert doveadm_listener(files) == b"address = 192.0.2.7\n    port = 2532"


def doveadm_listener(files) -> bytes:
    conf = files["dovecot/dovecot.conf"]
    return re.search(rb"service doveadm \{\s+inet_listener \{\s+(.*?)\n\s+\}", conf, re.S)[1]


def test_it_keeps_the_doveadm_server_where_it_is_told():
    """A node alone (the compose file) keeps its doveadm door on loopback while its mail
    ports face the internet."""
    cfg = replace(CONFIG, bind_address="0.0.0.0", doveadm_bind_address="127.0.0.1")
    assert doveadm_listener(render_static_files(cfg)) == b"address = 127.0.0.1\n    port = 2532"


@pytest.mark.parametrize(
    "change",
    [
        {"state_dir": Path("relative/dir")},
        {"state_dir": Path("/tmp/it's")},
        {"state_dir": Path("/" + "x" * 70)},
        {"hostname": "Mail Host"},
        {"bind_address": "localhost"},
        {"doveadm_bind_address": "0.0.0.0 port=1"},
        {"ports": {**CONFIG.ports, "imap": 2525}},
        {"ports": {k: v for k, v in CONFIG.ports.items() if k != "internal"}},
    ],
)
def test_it_refuses_a_config_that_would_break_the_files(change):
    with pytest.raises(ValueError):
        replace(CONFIG, **change)


def test_it_builds_from_settings(settings):
    settings.MAILHOST_NODE_STATE_DIR = Path("/srv/mh/from-settings")
    config = NodeConfig.from_settings()
    assert config.state_dir == Path("/srv/mh/from-settings")
    assert config.hostname == settings.MAILHOST_HOSTNAME
    assert config.ports["smtp"] == settings.MAILHOST_PORTS["smtp"]
    assert "internal" in config.ports
    assert NodeConfig.from_settings("/srv/other").state_dir == Path("/srv/other")


@pytest.mark.parametrize("local", ["Reports", "a'b", "x%s", "a b", "", "a..b", "-a"])
def test_it_refuses_a_report_local_part_that_is_not_plain(local):
    with pytest.raises(ValueError, match="report local part"):
        replace(CONFIG, report_local_parts=(local,))
# --- the edge's sites (rendered from portal state by the reconciler) ---------------------------

SITES = render_edge_sites(
    state_dir=str(STATE), bind_address="127.0.0.1", https_port=2443, edge=CONFIG.edge,
    sites=[EdgeSite("zeta.example"), EdgeSite("alpha.example", cert="acme/live/alpha.example.pem",
                                              key="acme/live/alpha.example.key")],
)


def test_the_edge_sites_match_the_golden_file():
    golden = GOLDEN.parent / "edge" / "sites.conf"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(SITES)
    assert golden.read_text() == SITES


@pytest.mark.parametrize(
    ("site", "edge"),
    [
        (EdgeSite("evil.example;}"), CONFIG.edge),
        (EdgeSite("a..b.example"), CONFIG.edge),
        (EdgeSite("ok.example", cert="../../etc/shadow"), CONFIG.edge),
        (EdgeSite("ok.example"), EdgeConfig(upstream="127.0.0.1:80; include /x")),
        (EdgeSite("ok.example"), EdgeConfig(headers=(("X-A", 'v" always; return 200 "'),))),
        (EdgeSite("ok.example"), EdgeConfig(portal_names=("a b",))),
    ],
)
def test_the_edge_refuses_what_would_break_its_config(site, edge):
    with pytest.raises(UnsafeEdgeValue):
        render_edge_sites(state_dir=str(STATE), bind_address="127.0.0.1", https_port=443,
                          edge=edge, sites=[site])


def test_the_edge_redirects_to_the_standard_port_without_naming_it():
    production = render_static_files(replace(CONFIG, ports={**CONFIG.ports, "http": 80,
                                                            "https": 443}))
    conf = production["edge/nginx.conf"].decode()
    assert "return 301 https://$host$request_uri;" in conf
    assert "listen 127.0.0.1:443 ssl default_server;" in conf


def test_the_edge_makes_room_for_webmail_and_dav_only_once_they_have_an_upstream():
    assert b"location /webmail/" not in RENDERED["edge/nginx.conf"]
    served = replace(CONFIG, edge=replace(CONFIG.edge, webmail_upstream="127.0.0.1:9001",
                                          dav_upstream="127.0.0.1:5232", webmail=False))
    conf = render_static_files(served)["edge/nginx.conf"].decode()
    assert "location /webmail/ {\n            proxy_pass http://127.0.0.1:9001;" in conf
    assert "location /dav/ {\n            proxy_pass http://127.0.0.1:5232;" in conf


def test_the_node_serves_dav_from_its_own_radicale_unless_told_another_upstream():
    conf = RENDERED["edge/nginx.conf"].decode()
    assert "location /dav/ {\n            proxy_pass http://127.0.0.1:5232;" in conf
    # The client's address as the edge saw it, never a header the client sent.
    assert "proxy_set_header X-Remote-Addr $remote_addr;" in conf
    assert "location = /.well-known/caldav {" in conf
    elsewhere = replace(CONFIG, edge=replace(CONFIG.edge, dav_upstream="127.0.0.1:6000"))
    conf = render_static_files(elsewhere)["edge/nginx.conf"].decode()
    assert "proxy_pass http://127.0.0.1:6000;" in conf and ":5232" not in conf
    radicale = RENDERED["dav/radicale.conf"].decode()
    assert "hosts = 127.0.0.1:5232\n" in radicale  # loopback only
    assert "type = owner_only\n" in radicale
    assert f"dovecot_socket = {STATE}/run/dovecot/auth-dav\n" in radicale
