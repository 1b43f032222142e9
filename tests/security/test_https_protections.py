"""Finding 15: production mode serves the portal as an HTTPS site should, and forwarded
headers are believed only from the operator's proxies.

Production mode is DEBUG false with MAILHOST_HTTPS left at its default. Proved on a real
gunicorn started with exactly those settings (the test acting as the TLS proxy in front of it),
by `manage.py check --deploy`, and with the test client for the spoofing attacks.
"""

import http.client
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client

from tenants.models import AuditEvent
from tests.api.conftest import make_tenant
from tests.factories import MembershipFactory
from tests.security.support import page_urls
from tests.stack import free_ports, wait_for

ROOT = Path(__file__).resolve().parents[2]


def production_env(**extra: str) -> dict[str, str]:
    """The environment of a production install: DEBUG false, MAILHOST_HTTPS not set."""
    test_only = ("MAILHOST_HTTPS", "DEBUG", "DJANGO_ALLOW_ASYNC_UNSAFE", "MAILHOST_BCRYPT_ROUNDS")
    env = {k: v for k, v in os.environ.items() if k not in test_only}
    return env | {
        "DEBUG": "false", "ALLOWED_HOSTS": "portal.example.net,127.0.0.1",
        "MAILHOST_OPERATOR_MAILBOX": "abuse-desk@operator.example.net",  # mailboxes.W001
    } | extra


def test_it_passes_the_deploy_checks_in_production_mode():
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT, env=production_env(), capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_it_refuses_a_trusted_proxy_that_is_not_an_address():
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT,
        env=production_env(MAILHOST_TRUSTED_PROXIES="proxy.example.net"),
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode != 0 and "mailhost.E020" in result.stdout + result.stderr


@pytest.fixture
def gunicorn(db):
    """Start gunicorn with the given environment on top of a production one; the test stands
    in for the TLS proxy at 127.0.0.1. Returns a GET function."""
    processes = []

    def start(**extra: str):
        port = free_ports(1)[0]
        database = settings.DATABASES["default"]
        url = (f"postgres://{database['USER']}@{database['HOST']}:{database['PORT']}/"
               f"{database['NAME']}")
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "mailhost.wsgi:application", "--workers", "1",
             "--bind", f"127.0.0.1:{port}"],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            env=production_env(DATABASE_URL=url, **extra),
        )
        processes.append(process)

        def get(path: str, headers: dict | None = None) -> http.client.HTTPResponse:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            headers = {"Host": "portal.example.net", **(headers or {})}
            connection.request("GET", path, headers=headers)
            response = connection.getresponse()
            response.read()
            connection.close()
            return response

        def answers() -> bool:
            try:
                get("/api/v1/health")
            except OSError:
                return process.poll() is not None  # stop waiting if it died
            return True

        wait_for(answers, timeout=30)
        assert process.poll() is None, process.stderr.read().decode()
        return get

    yield start
    for process in processes:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def production_portal(gunicorn):
    return gunicorn(MAILHOST_TRUSTED_PROXIES="127.0.0.1")


def test_it_serves_a_dev_install_over_plain_http(gunicorn):
    """What `make up` runs: MAILHOST_HTTPS=false on http://127.0.0.1 — no redirect, no HSTS,
    cookies a plain-http browser keeps; the CSP is on all the same."""
    get = gunicorn(MAILHOST_HTTPS="false")
    response = get("/accounts/login/")
    assert response.status == 200
    assert response.getheader("Strict-Transport-Security") is None
    assert "Secure" not in response.getheader("Set-Cookie")
    assert "script-src 'self'" in response.getheader("Content-Security-Policy")


def test_it_redirects_plain_http_to_https_in_production(production_portal):
    response = production_portal("/accounts/login/")
    assert response.status == 301
    assert response.getheader("Location") == "https://portal.example.net/accounts/login/"


def test_it_sends_hsts_secure_cookies_and_csp_over_https(production_portal):
    response = production_portal("/accounts/login/", {"X-Forwarded-Proto": "https"})
    assert response.status == 200
    assert response.getheader("Strict-Transport-Security") == (
        "max-age=31536000; includeSubDomains"
    )
    cookie = response.getheader("Set-Cookie")
    assert "csrftoken=" in cookie and "Secure" in cookie
    csp = response.getheader("Content-Security-Policy")
    assert "default-src 'self'" in csp and "script-src 'self'" in csp
    assert "style-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp


def test_it_keeps_health_and_autoconfig_reachable_over_http(production_portal):
    assert production_portal("/api/v1/health").status in (200, 503)


# --- forwarded headers -----------------------------------------------------------------------


@pytest.fixture
def behind_proxy(settings):
    """The portal with one trusted proxy, 10.0.0.1; a production-mode redirect."""
    settings.MAILHOST_TRUSTED_PROXIES = ["10.0.0.1"]
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.SECURE_SSL_REDIRECT = True
    return settings


def test_it_ignores_a_direct_client_claiming_https(behind_proxy, db):
    attacker = Client(REMOTE_ADDR="192.0.2.7")
    response = attacker.get("/accounts/login/", headers={"X-Forwarded-Proto": "https"})
    assert response.status_code == 301 and response.url.startswith("https://")
    proxied = Client(REMOTE_ADDR="10.0.0.1")
    response = proxied.get("/accounts/login/", headers={"X-Forwarded-Proto": "https"})
    assert response.status_code == 200


def _audited_ip(remote_addr: str, forwarded_for: str) -> str:
    tenant = make_tenant("acme")
    client = Client(REMOTE_ADDR=remote_addr)
    response = client.post(
        "/api/v1/domains", {"name": "new.test"}, content_type="application/json",
        headers={"Authorization": f"Bearer {tenant.rw.token}", "X-Forwarded-Proto": "https",
                 "X-Forwarded-For": forwarded_for},
        secure=True,
    )
    assert response.status_code == 201, response.content
    return AuditEvent.objects.get(action="domain.create", target="new.test").ip


def test_it_audits_the_client_address_a_trusted_proxy_reports(behind_proxy, db):
    # The client wrote "6.6.6.6" itself; the proxy appended the address it really saw.
    assert _audited_ip("10.0.0.1", "6.6.6.6, 203.0.113.9") == "203.0.113.9"


def test_it_audits_the_peer_when_a_client_forges_x_forwarded_for(behind_proxy, db):
    assert _audited_ip("192.0.2.7", "203.0.113.9") == "192.0.2.7"


def test_it_rate_limits_operator_logins_by_the_real_client_behind_the_proxy(behind_proxy, db):
    """allauth's per-IP login limit counts the proxy-reported client: one client rotating a
    forged X-Forwarded-For prefix stays one client; another client behind the proxy is not
    locked out by it."""
    from django.core.cache import cache

    cache.clear()
    behind_proxy.ACCOUNT_RATE_LIMITS = {"login_failed": "3/m/ip"}
    for n in range(4):
        Client(REMOTE_ADDR="10.0.0.1").post(
            "/accounts/login/", {"login": f"x{n}@ops.test", "password": "guess"},
            headers={"X-Forwarded-For": f"198.51.100.{n}, 203.0.113.9",
                     "X-Forwarded-Proto": "https"}, secure=True,
        )
    blocked = Client(REMOTE_ADDR="10.0.0.1").post(
        "/accounts/login/", {"login": "y@ops.test", "password": "guess"},
        headers={"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"}, secure=True,
    )
    other = Client(REMOTE_ADDR="10.0.0.1").post(
        "/accounts/login/", {"login": "z@ops.test", "password": "guess"},
        headers={"X-Forwarded-For": "203.0.113.10", "X-Forwarded-Proto": "https"}, secure=True,
    )
    cache.clear()
    assert b"Too many failed login attempts" in blocked.content
    assert b"Too many failed login attempts" not in other.content


# --- a Content-Security-Policy on every page, and nothing inline for it to block -------------


INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)(?![^>]*application/json)[^>]*>", re.I)
INLINE_STYLE = re.compile(r"<style\b|\sstyle=\"|\son[a-z]+=\"|javascript:", re.I)


def test_it_sends_a_strict_csp_on_every_page_and_has_no_inline_script_or_style(everything, db):
    viewer = MembershipFactory(organisation__slug="other", role="owner").user
    viewer.save()
    operator = Client()
    operator.force_login(MembershipFactory(
        organisation_id=everything_org(everything), role="owner").user)
    staff = Client()
    from tenants.services import user_create_staff

    staff.force_login(user_create_staff(email="staff@ops.test", password="staff-password-1"))
    holder = Client()
    holder.post("/mailbox/login/", {"address": everything.values["address"],
                                    "password": everything.mailbox_password})
    seen = 0
    for url in page_urls(everything) + ["/admin/tenants/organisation/add/", "/api/v1/docs"]:
        for client in (operator, staff, holder, Client()):
            response = client.get(url)
            if "text/html" not in response.get("Content-Type", ""):
                continue
            seen += 1
            csp = response.get("Content-Security-Policy", "")
            assert "script-src 'self'" in csp and "unsafe-inline" not in csp, url
            body = response.content.decode()
            assert not INLINE_SCRIPT.search(body), (url, INLINE_SCRIPT.search(body).group(0))
            assert not INLINE_STYLE.search(body), (url, INLINE_STYLE.search(body).group(0))
    assert seen > 100


def everything_org(everything) -> int:
    from tenants.models import Organisation

    return Organisation.objects.get(slug=everything.values["org"]).pk


@pytest.mark.browser
def test_it_renders_the_pages_in_chromium_without_a_csp_violation(
    page, live_server, transactional_db
):
    from playwright.sync_api import expect

    from mailboxes.services import domain_create, mailbox_create
    from tenants.access import SYSTEM
    from tenants.services import organisation_create, user_create_staff

    user_create_staff(email="staff@ops.test", password="staff-password-1")
    organisation = organisation_create(actor=SYSTEM, slug="acme", name="Acme")
    domain = domain_create(actor=SYSTEM, organisation=organisation, name="acme.test")
    mailbox_create(actor=SYSTEM, domain=domain, local_part="anna", password="anna-password-1")
    violations: list[str] = []
    page.on("console", lambda message: violations.append(message.text)
            if "Content Security Policy" in message.text else None)

    base = live_server.url
    page.goto(base + "/accounts/login/")
    page.get_by_label("Email").fill("staff@ops.test")
    page.get_by_label("Password").fill("staff-password-1")
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/mail-admin/"))
    for path in ["/mail-admin/acme/", "/mail-admin/acme/domains/acme.test/dns/",
                 "/mail-admin/acme/mailboxes/anna@acme.test/", "/mail-admin/acme/audit/",
                 "/admin/", "/admin/tenants/organisation/add/",
                 "/mail-admin/acme/nothing-here/"]:
        page.goto(base + path)
        expect(page.locator("body")).to_be_visible()
    expect(page.locator("img[src^='data:']")).to_have_count(0)  # (the admin page is last)
    page.goto(base + "/accounts/2fa/totp/activate/")
    page.get_by_label("Password").fill("staff-password-1")  # allauth asks again first
    page.get_by_role("button", name="Confirm").click()
    expect(page.locator("img[src^='data:']").first).to_be_visible()  # the TOTP QR code
    page.goto(base + "/api/v1/docs")
    expect(page.get_by_text("Mailhost API").first).to_be_visible()
    page.goto(base + "/mailbox/login/")
    page.get_by_label("E-mail address").fill("anna@acme.test")
    page.get_by_label("Password").fill("anna-password-1")
    page.get_by_role("button", name="Sign in").click()
    page.goto(base + "/mailbox/setup/")
    expect(page.get_by_role("heading", level=1)).to_be_visible()
    assert violations == []
