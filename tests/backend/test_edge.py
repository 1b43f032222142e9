"""The edge (Debian's nginx) in front of the portal, as a browser, a sending MTA fetching an
MTA-STS policy, a mail client and an ACME server see it: real nginx, real gunicorn."""

import dataclasses
import http.client
import ssl
from collections.abc import Iterator

import pytest

from mailboxes import services
from mailhost.backend.config import edge_config_from_settings
from mailhost.backend.edge import ACME_WEBROOT, EDGE_SITES
from mailhost.backend.stack import Stack
from nodes.models import MailNode
from nodes.reconcile import reconcile_full
from tenants.access import SYSTEM
from tests.factories import OrganisationFactory
from tests.portal import running_portal
from tests.stack import HOSTNAME, stack_web_port, unique_domain, wait_for

pytestmark = [pytest.mark.stack, pytest.mark.django_db(transaction=True)]

HSTS = "max-age=31536000; includeSubDomains"


@dataclasses.dataclass
class Answer:
    status: int
    headers: http.client.HTTPMessage
    body: bytes
    certificate: bytes | None  # DER of the certificate the edge presented (HTTPS)


def fetch(stack: Stack, name: str, path: str, *, https: bool = True,
          context: ssl.SSLContext | None = None) -> Answer:
    """GET `path` from the edge as a client asking for host `name` (SNI and Host)."""
    port = stack.cfg.ports["https" if https else "http"]
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.connect()
    if https:
        if context is None:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE  # the node's self-signed certificate
        connection.sock = context.wrap_socket(connection.sock, server_hostname=name)
    certificate = connection.sock.getpeercert(binary_form=True) if https else None
    try:
        connection.request("GET", path, headers={"Host": f"{name}:{port}"})
        response = connection.getresponse()
        return Answer(response.status, response.headers, response.read(), certificate)
    finally:
        connection.close()


@pytest.fixture
def production_edge(mail_stack, stack_node, settings) -> Iterator[Stack]:
    """The shared stack's edge as production renders it (HSTS on), restored afterwards."""
    settings.SECURE_HSTS_SECONDS = 31_536_000
    settings.SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    settings.SECURE_HSTS_PRELOAD = False
    original = mail_stack.cfg
    edge = dataclasses.replace(edge_config_from_settings(settings),
                               upstream=original.edge.upstream)
    stack = Stack(dataclasses.replace(original, edge=edge))
    assert stack.write_config() == ["edge/nginx.conf"]
    stack.reload_edge()
    try:
        yield stack
    finally:
        Stack(original).write_config()
        Stack(original).reload_edge()


@pytest.fixture
def portal(mail_stack, production_edge):
    """The portal in production mode behind the edge: HTTPS, trusting the edge's headers."""
    with running_portal(
        port=stack_web_port(mail_stack), MAILHOST_HTTPS="true", MAILHOST_HOSTNAME=HOSTNAME,
        MAILHOST_TRUSTED_PROXIES="127.0.0.1",
    ) as running:
        yield running


def test_it_serves_the_portal_over_https_in_production_mode(production_edge, portal):
    answer = fetch(production_edge, HOSTNAME, "/accounts/login/")
    # 200, not a redirect loop: the portal believes the edge that the client spoke HTTPS.
    assert answer.status == 200, answer.body[:500]
    assert answer.headers.get_all("Strict-Transport-Security") == [HSTS]  # once, the portal's
    cookies = answer.headers.get_all("Set-Cookie") or []
    assert cookies and all("Secure" in cookie for cookie in cookies)
    assert answer.headers.get("Server") == "nginx"  # no version (server_tokens off)


def test_it_redirects_http_to_https_but_answers_acme_challenges(production_edge):
    redirect = fetch(production_edge, HOSTNAME, "/mail-admin/?x=1", https=False)
    port = production_edge.cfg.ports["https"]
    assert redirect.status == 301
    assert redirect.headers["Location"] == f"https://{HOSTNAME}:{port}/mail-admin/?x=1"

    challenge = production_edge.cfg.path(f"{ACME_WEBROOT}/.well-known/acme-challenge/tok-123")
    challenge.parent.mkdir(parents=True, exist_ok=True)
    challenge.write_text("tok-123.thumbprint")
    try:
        # Any name: the CA asks for whichever name it validates.
        answer = fetch(production_edge, "mta-sts.anything.test",
                       "/.well-known/acme-challenge/tok-123", https=False)
        assert (answer.status, answer.body) == (200, b"tok-123.thumbprint")
        missing = fetch(production_edge, HOSTNAME, "/.well-known/acme-challenge/nope",
                        https=False)
        assert missing.status == 404
        escape = fetch(production_edge, HOSTNAME, "/.well-known/acme-challenge/../../tls/key.pem",
                       https=False)
        assert escape.status in (301, 400, 404) and b"PRIVATE KEY" not in escape.body
    finally:
        challenge.unlink()


def test_it_routes_a_live_domains_service_hosts_and_nothing_else(production_edge, portal):
    node = MailNode.objects.get()
    reconcile_full(node)  # the shared node: sites of earlier tests' domains are dropped first
    organisation = OrganisationFactory()
    live = services.domain_create(actor=SYSTEM, organisation=organisation,
                                  name=unique_domain("edge"))
    claimed = services.domain_create(actor=SYSTEM, organisation=organisation,
                                     name=unique_domain("claim"))
    services.domain_revoke_verification(actor=SYSTEM, domain=claimed)
    reconcile_full(node)
    sites = production_edge.cfg.path(EDGE_SITES).read_text()
    assert f"mta-sts.{live.name}" in sites and claimed.name not in sites

    def policy():
        return fetch(production_edge, f"mta-sts.{live.name}", "/.well-known/mta-sts.txt")

    # nginx swaps its workers after the SIGHUP: wait until a request meets the new ones.
    wait_for(lambda: policy().status == 200, timeout=10)
    answer = policy()
    assert answer.headers["Content-Type"] == "text/plain"
    assert answer.body.startswith(b"version: STSv1\r\n")
    autoconfig = fetch(production_edge, f"autoconfig.{live.name}", "/mail/config-v1.1.xml")
    assert autoconfig.status == 200 and b"<clientConfig" in autoconfig.body
    # Anything else on a service host stops at the edge, with the portal's headers.
    admin = fetch(production_edge, f"mta-sts.{live.name}", "/admin/")
    assert admin.status == 404
    assert admin.headers.get_all("Strict-Transport-Security") == [HSTS]
    # A domain that is not live has no service hosts: the portal refuses the name.
    refused = fetch(production_edge, f"mta-sts.{claimed.name}", "/.well-known/mta-sts.txt")
    assert refused.status == 400


def test_it_reloads_only_when_its_sites_change(production_edge):
    node = MailNode.objects.get()
    reconcile_full(node)
    master = production_edge.pid("edge")

    workers = production_edge.edge_workers  # a reload starts new ones, the old ones leave
    wait_for(lambda: len(workers()) == 1)  # the old ones of an earlier reload have left
    before = workers()
    reconcile_full(node)
    assert workers() == before
    services.domain_create(actor=SYSTEM, organisation=OrganisationFactory(),
                           name=unique_domain("edge"))
    reconcile_full(node)
    wait_for(lambda: workers() and not workers() & before)
    assert production_edge.pid("edge") == master  # reloaded in place, never restarted


def test_its_own_answers_carry_the_portals_security_headers(production_edge):
    """With the portal down the edge answers itself (503), with the same security headers as
    a portal page: compared against what a live portal sends."""
    with running_portal(port=stack_web_port(production_edge), MAILHOST_HTTPS="true",
                        MAILHOST_HOSTNAME=HOSTNAME, MAILHOST_TRUSTED_PROXIES="127.0.0.1"):
        page = fetch(production_edge, HOSTNAME, "/accounts/login/")
    down = fetch(production_edge, HOSTNAME, "/accounts/login/")
    assert down.status == 503
    assert b"mail is not affected" in down.body
    for name, _value in production_edge.cfg.edge.headers:
        if name == "Content-Security-Policy":
            directives = {d.strip() for d in page.headers[name].split(";")}
            assert {d.strip() for d in down.headers[name].split(";")} == directives
        else:
            assert down.headers.get_all(name) == page.headers.get_all(name), name
    assert {name for name, _ in production_edge.cfg.edge.headers} >= {
        "Strict-Transport-Security", "X-Content-Type-Options", "X-Frame-Options",
        "Referrer-Policy", "Content-Security-Policy",
    }
