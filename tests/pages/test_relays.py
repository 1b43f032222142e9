"""Relays in /mail-admin/ and the API: set (page and API), list without the password, remove,
the test action against a fake relay, another tenant's 404, a viewer's 403, bad input's 422
with nothing written; the SPF record includes the relay's include and the check warns while
the published one does not."""

import pytest

from identity.selectors import domain_records, posture_snapshot
from identity.verify import OK, WRONG, check_spf
from mailhost.crypto import decrypt
from nodes.models import NodeChange
from routing.models import Relay
from routing.services import RelayInput, relay_set
from tenants.access import SYSTEM
from tenants.models import AuditEvent
from tests.api.conftest import ApiClient, make_token
from tests.routing import fake_relay

PUBLIC = "192.0.2.0/24"  # stands for the public internet here


@pytest.fixture(autouse=True)
def relay_networks(settings):
    settings.MAILHOST_RELAY_ALLOWED_NETWORKS = [PUBLIC, "127.0.0.0/8"]


def form(**values):
    return {"domain": "acme.test", "host": "192.0.2.50", "port": "587",
            "tls_mode": "required", "username": "acme", "password": "s3cret!",
            "spf_include": "spf.relay.example"} | values


def test_it_sets_a_domain_relay_from_the_page(owner_client, org, domain):
    done = owner_client.post("/mail-admin/acme/relays/", form())
    assert done.status_code == 302
    relay = Relay.objects.get(domain=domain)
    assert (relay.host, relay.port, relay.username) == ("192.0.2.50", 587, "acme")
    assert decrypt(relay.password_encrypted) == b"s3cret!"
    assert NodeChange.objects.filter(kind="relay", object_id=relay.pk).exists()
    event = AuditEvent.objects.get(action="relay.create")
    assert "s3cret" not in str(event.after)
    page = owner_client.get("/mail-admin/acme/relays/")
    assert b"192.0.2.50:587" in page.content and b"s3cret" not in page.content


def test_an_edit_without_a_password_keeps_the_stored_one(owner_client, domain):
    owner_client.post("/mail-admin/acme/relays/", form())
    owner_client.post("/mail-admin/acme/relays/", form(password="", port="2525"))
    relay = Relay.objects.get(domain=domain)
    assert relay.port == 2525 and decrypt(relay.password_encrypted) == b"s3cret!"


@pytest.mark.parametrize(("values", "message"), [
    ({"host": "10.1.2.3"}, b"public addresses"),
    ({"host": "127.0.0.1\n@evil.test"}, b"not a host name"),
    ({"port": "seventy"}, b"a number"),
    ({"port": "70000"}, b"1\xe2\x80\x9365535"),
    ({"tls_mode": "none"}, b"TLS mode"),
    ({"password": "has space"}, b"without spaces"),
    ({"username": "a:b"}, b"without &#x27;:&#x27;"),
])
def test_bad_input_is_a_422_and_writes_nothing(owner_client, domain, values, message):
    answer = owner_client.post("/mail-admin/acme/relays/", form(**values))
    assert answer.status_code == 422
    assert message in answer.content
    assert not Relay.objects.exists() and not AuditEvent.objects.filter(
        action__startswith="relay").exists()


def test_a_viewer_gets_403_and_another_tenant_404(viewer_client, stranger_client, org, domain):
    relay, _ = relay_set(actor=SYSTEM, organisation=org, domain=domain,
                         data=RelayInput(host="192.0.2.50"))
    assert viewer_client.post("/mail-admin/acme/relays/", form()).status_code == 403
    assert viewer_client.get("/mail-admin/acme/relays/").status_code == 200
    assert viewer_client.post(f"/mail-admin/acme/relays/{relay.pk}/remove/").status_code == 403
    for path in ("/mail-admin/acme/relays/", f"/mail-admin/acme/relays/{relay.pk}/remove/",
                 f"/mail-admin/acme/relays/{relay.pk}/test/", "/mail-admin/acme/queue/"):
        assert stranger_client.get(path).status_code == 404
    assert stranger_client.post(f"/mail-admin/globex/relays/{relay.pk}/remove/").status_code \
        == 404
    assert Relay.objects.filter(pk=relay.pk).exists()


def test_the_api_sets_lists_and_removes_relays(org, other_org, domain):
    api = ApiClient(make_token(org))
    body = {"host": "192.0.2.60", "port": 465, "tls_mode": "verified", "username": "u",
            "password": "p4ss", "spf_include": "spf.relay.example"}
    assert api.send("PUT", "/domains/acme.test/relay", body).status_code == 201
    assert api.send("PUT", "/domains/acme.test/relay", body | {"password": None}).status_code \
        == 200
    assert api.send("PUT", "/relays/organisation", {"host": "192.0.2.61"}).status_code == 201
    listed = api.get("/relays").json()
    assert [(r["domain"], r["host"], r["password_set"]) for r in listed] == [
        ("acme.test", "192.0.2.60", True), (None, "192.0.2.61", False)]
    assert "password" not in listed[0]
    assert api.send("PUT", "/domains/acme.test/relay", body | {"host": "10.0.0.1"}).status_code \
        == 422

    other = ApiClient(make_token(other_org))
    assert other.send("PUT", "/domains/acme.test/relay", body).status_code == 404
    assert other.send("DELETE", f"/relays/{listed[0]['id']}").status_code == 404
    assert ApiClient(make_token(org, read_only=True)).send(
        "DELETE", f"/relays/{listed[0]['id']}").status_code == 403
    assert api.send("DELETE", f"/relays/{listed[0]['id']}").status_code == 204
    assert not Relay.objects.filter(domain=domain).exists()


@pytest.fixture
def live_relay():
    with fake_relay.running(username="acme", password="right") as relay:
        yield relay


def test_the_test_action_reports_the_relays_reply(owner_client, org, domain, live_relay):
    relay, _ = relay_set(actor=SYSTEM, organisation=org, domain=domain, data=RelayInput(
        host="127.0.0.1", port=live_relay.port, username="acme", password="right"))
    path = f"/mail-admin/acme/relays/{relay.pk}/test/"

    good = owner_client.post(path, {"to": "someone@far.test"})
    assert good.status_code == 200 and b"The relay took the message" in good.content
    assert b"250 2.0.0 Ok: queued at the fake relay" in good.content
    assert live_relay.received_by("someone@far.test")[0].login == "acme"

    relay_set(actor=SYSTEM, organisation=org, domain=domain, data=RelayInput(
        host="127.0.0.1", port=live_relay.port, username="acme", password="wrong"))
    bad = ApiClient(make_token(org)).post(f"/relays/{relay.pk}/test", {"to": "x@far.test"})
    assert bad.status_code == 200
    assert bad.json() == {"ok": False, "stage": "auth",
                          "reply": "535 5.7.8 Authentication credentials invalid"}
    assert AuditEvent.objects.filter(action="relay.test").count() == 2


class Published:
    """The published DNS as the SPF check sees it: the domain's TXT and nothing else."""

    def __init__(self, txt: dict[str, str]):
        self.txt = txt

    def texts(self, name, rdtype):
        return [self.txt[name]] if rdtype == "TXT" and name in self.txt else []

    spf_lookup = texts


def test_the_spf_record_includes_the_relay_and_the_check_warns_without_it(
        org, domain, settings):
    settings.MAILHOST_PUBLIC_IPV4, settings.MAILHOST_PUBLIC_IPV6 = ["192.0.2.25"], []
    relay_set(actor=SYSTEM, organisation=org, data=RelayInput(
        host="192.0.2.50", spf_include="spf.relay.example"))

    (spf,) = [r for r in domain_records(domain) if r.key == "spf"]
    assert spf.value == "v=spf1 ip4:192.0.2.25 include:spf.relay.example -all"

    snap = posture_snapshot(domain)
    old = Published({"acme.test": "v=spf1 ip4:192.0.2.25 -all"})
    status, detail, _ = check_spf(snap, old)
    assert status == WRONG and "include:spf.relay.example" in detail
    new = Published({"acme.test": spf.value, "spf.relay.example": "v=spf1 ip4:192.0.2.50 -all"})
    assert check_spf(snap, new)[0] == OK
