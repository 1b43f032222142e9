"""Publishing by RFC 2136 dynamic update with TSIG, against Knot; the verifier then sees it."""

import base64
import secrets
from pathlib import Path

import pytest

from identity.models import DomainPosture
from identity.services import (
    PublishFailed,
    bimi_upload,
    dmarc_set_stage,
    dns_publish,
    posture_update,
)
from identity.tasks import publish_domain
from mailhost.crypto import encrypt
from mailhost.errors import Conflict, Invalid
from tenants.access import SYSTEM
from tenants.models import AuditEvent
from tests.dns_server import TSIG_KEY_NAME
from tests.identity.support import check_now, lookup_at

pytestmark = [pytest.mark.dns, pytest.mark.django_db]

LOGO = (Path(__file__).parent / "svg" / "good.svg").read_bytes()
EXISTING = (
    'good.test. TXT "google-site-verification=abc123"\n'
    'good.test. TXT "v=spf1 include:old-provider.example -all"\n'
    "good.test. MX 10 mx.old-provider.example.\n"
)


def configure(domain, server, **overrides) -> None:
    values = dict(
        auto_publish=True,
        publish_server="127.0.0.1",
        publish_port=server.port,
        tsig_key_name=TSIG_KEY_NAME,
        tsig_secret=server.key_secret,
    )
    posture_update(actor=SYSTEM, domain=domain, **(values | overrides))


def test_it_publishes_every_record_and_the_verifier_then_sees_them(dns_world, domain):
    bimi_upload(actor=SYSTEM, domain=domain, data=LOGO)
    dmarc_set_stage(actor=SYSTEM, domain=domain, policy="reject", force=True)
    server = dns_world({"good.test": EXISTING})
    assert check_now(domain)["mx"].status == "wrong"
    configure(domain, server)

    changed = dns_publish(actor=SYSTEM, domain=domain)

    assert "good.test TXT (SPF)" in changed and "default._bimi.good.test TXT" in changed
    results = check_now(domain)
    assert {k: r.status for k, r in results.items()} == {k: "ok" for k in results}, {
        k: r.detail for k, r in results.items() if r.status != "ok"
    }
    apex = lookup_at(server.address).texts("good.test", "TXT")
    assert "google-site-verification=abc123" in apex  # other TXT records at the apex survive
    assert [v for v in apex if v.startswith("v=spf1")] == [
        "v=spf1 ip4:192.0.2.25 ip6:2001:db8::25 -all"
    ]
    assert AuditEvent.objects.filter(action="dns.publish").latest("id").after["error"] == ""


def test_it_is_idempotent(dns_world, domain):
    server = dns_world({"good.test": EXISTING})
    configure(domain, server)
    dns_publish(actor=SYSTEM, domain=domain)
    first = lookup_at(server.address).texts("good.test", "TXT")
    dns_publish(actor=SYSTEM, domain=domain)
    assert sorted(lookup_at(server.address).texts("good.test", "TXT")) == sorted(first)


def test_it_removes_the_bimi_record_when_dmarc_stops_enforcing(dns_world, domain):
    bimi_upload(actor=SYSTEM, domain=domain, data=LOGO)
    dmarc_set_stage(actor=SYSTEM, domain=domain, policy="reject", force=True)
    server = dns_world({"good.test": ""})
    configure(domain, server)
    dns_publish(actor=SYSTEM, domain=domain)
    assert lookup_at(server.address).texts("default._bimi.good.test", "TXT")
    dmarc_set_stage(actor=SYSTEM, domain=domain, policy="none")
    dns_publish(actor=SYSTEM, domain=domain)
    assert lookup_at(server.address).texts("default._bimi.good.test", "TXT") == []


def test_it_reports_a_wrong_secret_and_keeps_the_error(dns_world, domain):
    server = dns_world({"good.test": EXISTING})
    wrong = base64.b64encode(secrets.token_bytes(32)).decode()
    configure(domain, server, tsig_secret=wrong)
    with pytest.raises(PublishFailed, match="rejected the TSIG signature") as caught:
        dns_publish(actor=SYSTEM, domain=domain)
    assert caught.value.status == 502
    domain.posture.refresh_from_db()
    assert "TSIG" in domain.posture.last_publish_error
    assert lookup_at(server.address).texts("good.test", "MX") == ["mx.old-provider.example"]


def test_it_reports_a_key_the_server_does_not_know(dns_world, domain):
    server = dns_world({"good.test": EXISTING})
    configure(domain, server, tsig_key_name="someone-else")
    with pytest.raises(PublishFailed, match="does not know the TSIG key someone-else"):
        dns_publish(actor=SYSTEM, domain=domain)


def test_it_reports_a_server_that_does_not_answer(mail_settings, domain, silent_dns):
    port = int(silent_dns.split("@")[1])
    mail_settings.MAILHOST_DNS_PUBLISH_TIMEOUT_MS = 300
    posture_update(
        actor=SYSTEM,
        domain=domain,
        auto_publish=True,
        publish_server="127.0.0.1",
        publish_port=port,
        tsig_key_name=TSIG_KEY_NAME,
        tsig_secret=base64.b64encode(secrets.token_bytes(32)).decode(),
    )
    with pytest.raises(PublishFailed, match="gave no usable answer") as caught:
        dns_publish(actor=SYSTEM, domain=domain)
    assert str(port) not in caught.value.detail  # the port state stays in the server log


def test_it_refuses_to_publish_without_configuration(domain):
    with pytest.raises(Conflict) as caught:
        dns_publish(actor=SYSTEM, domain=domain)
    assert caught.value.code == "publishing_not_configured"


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"auto_publish": True}, "auto_publish"),
        ({"publish_server": "ns1 example"}, "publish_server"),
        ({"publish_server": "169.254.169.254"}, "publish_server"),
        ({"tsig_secret": "not base64!"}, "tsig_secret"),
        ({"tsig_key_name": "bad name"}, "tsig_key_name"),
        ({"publish_zone": "other.test"}, "publish_zone"),
        ({"dmarc_rua": ["not an address"]}, "dmarc_rua"),
        ({"tlsrpt_rua": ["ftp://x"]}, "tlsrpt_rua"),
    ],
)
def test_it_refuses_bad_publishing_settings_naming_the_field(domain, changes, field):
    with pytest.raises(Invalid) as caught:
        posture_update(actor=SYSTEM, domain=domain, **changes)
    assert caught.value.field == field


def test_it_keeps_the_tsig_secret_encrypted_and_out_of_the_audit_log(dns_world, domain):
    server = dns_world({"good.test": ""})
    configure(domain, server)
    domain.posture.refresh_from_db()
    assert server.key_secret not in domain.posture.tsig_secret_encrypted
    assert server.key_secret not in str(AuditEvent.objects.values_list("before", "after"))


def test_it_does_not_retry_a_publish_to_a_server_it_may_not_reach(domain, mail_settings):
    mail_settings.MAILHOST_DNS_PUBLISH_ALLOWED_NETWORKS = []
    DomainPosture.objects.create(  # stored before the address rules, or before staff narrowed them
        domain=domain, auto_publish=True, publish_server="127.0.0.1", publish_port=53,
        tsig_key_name=TSIG_KEY_NAME, tsig_secret_encrypted=encrypt(b"c2VjcmV0c2VjcmV0c2VjcmV0"),
    )
    assert publish_domain.apply(args=[domain.pk]).get() == []
    event = AuditEvent.objects.get(action="dns.publish", organisation=domain.organisation)
    assert "loopback" in event.after["error"]
