"""The forwarding path's pure renderers (mailhost/backend/forwarding.py): postsrsd's secrets,
Rspamd's ARC config and the SRS address scheme the tests forge with."""

import pytest

from mailhost.backend.forwarding import (
    ArcSnap,
    ForwardingSnap,
    UnsafeForwardingValue,
    forwarding_files,
    render_arc_conf,
    render_srs_secrets,
    srs0_address,
    srs_timestamp,
)

KEY = ArcSnap("mail.example.test", "arcmh20261201", b"-----BEGIN RSA PRIVATE KEY-----\n")


def test_it_makes_the_address_postsrsd_makes():
    # Seen from postsrsd 1.10 (Debian 12) with this secret first in its file, on day 20788.
    assert srs_timestamp(20788) == "JU"
    assert srs0_address("bmV3c2VjcmV0bmV3c2VjcmV0", "a@b.example", day=20788,
                        srs_domain="mail.stack.test") == "SRS0=FS4G=JU=b.example=a@mail.stack.test"


def test_it_writes_the_signing_secret_first():
    assert render_srs_secrets(("bmV3c2VjcmV0bmV3c2VjcmV0", "c2VjcmV0c2VjcmV0c2VjcmV0")) == (
        b"bmV3c2VjcmV0bmV3c2VjcmV0\nc2VjcmV0c2VjcmV0c2VjcmV0\n"
    )


@pytest.mark.parametrize("secrets", [(), ("short",), ("c2VjcmV0c2VjcmV0\nc2VjcmV0",),
                                     ("c2VjcmV0 c2VjcmV0c2VjcmV0",)])
def test_it_refuses_secrets_that_would_break_the_file(secrets):
    with pytest.raises(UnsafeForwardingValue):
        render_srs_secrets(secrets)


def test_it_verifies_arc_without_sealing_until_there_is_a_key():
    conf = render_arc_conf("/srv/mh/node", None)
    assert "sign_condition" not in conf
    assert "sign_inbound = false;" in conf and "sign_local = false;" in conf


def test_it_seals_only_on_the_forwarding_listener_with_the_key_file():
    conf = render_arc_conf("/srv/mh/node", KEY)
    assert "tostring(name) ~= 'mailhost-forward' then return false end" in conf
    assert ("key = '/srv/mh/node/arc/mail.example.test.arcmh20261201.key'" in conf)
    assert "reuse_auth_results = true;" in conf


@pytest.mark.parametrize("arc", [
    ArcSnap("../etc", "arc", b""), ArcSnap("mail.example.test", "a'b", b""),
    ArcSnap("mail.example.test", "x/../../y", b""),
])
def test_it_refuses_arc_names_that_would_escape_the_config_or_the_key_directory(arc):
    with pytest.raises(UnsafeForwardingValue):
        forwarding_files("/srv/mh/node", ForwardingSnap(("c2VjcmV0c2VjcmV0c2VjcmV0",), arc))


def test_it_renders_the_key_beside_the_config():
    files = forwarding_files("/srv/mh/node", ForwardingSnap(("c2VjcmV0c2VjcmV0c2VjcmV0",), KEY))
    assert sorted(files) == ["arc/mail.example.test.arcmh20261201.key",
                             "rspamd/local.d/arc.conf", "srs/secrets"]
