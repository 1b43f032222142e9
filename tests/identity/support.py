"""Helpers for the DNS-posture tests (fixtures are in conftest.py)."""

import http.client
import json
from urllib.parse import urlparse

import dns.reversename
from django.test import Client

from identity import mtasts
from identity.records import zone_fragment
from identity.selectors import domain_records
from identity.verify import (
    DnsLookup,
    PolicyFetchError,
    make_resolver,
    policy_from_response,
    read_policy_response,
)
from tenants.access import SYSTEM
from tenants.services import api_token_create

MAIL_HOST = "mail.provider.test"
PORTAL_HOST = "portal.provider.test"
IPV4, IPV6 = "192.0.2.25", "2001:db8::25"
OTHER_IPV4 = "198.51.100.7"


def provider_records() -> str:
    return (
        f"mail IN A {IPV4}\nmail IN AAAA {IPV6}\nportal IN A 127.0.0.1\n"
        f'_spf IN TXT "v=spf1 ip4:{IPV4} ip6:{IPV6} -all"\n'
    )


def reverse_zones(ptr_target: str = f"{MAIL_HOST}.") -> dict[str, str]:
    v4 = dns.reversename.from_address(IPV4).to_text()
    v6 = dns.reversename.from_address(IPV6).to_text()
    return {
        "2.0.192.in-addr.arpa": f"{v4} IN PTR {ptr_target}\n",
        "8.b.d.0.1.0.0.2.ip6.arpa": f"{v6} IN PTR {ptr_target}\n",
    }


def fragment_for(domain) -> str:
    """The zone fragment the portal tells the operator to paste, as the zone content."""
    return zone_fragment(domain_records(domain), domain=domain.name, ttl=300)


def lookup_at(server_spec: str, *, lifetime_ms: int = 3000) -> DnsLookup:
    resolver = make_resolver([server_spec], timeout_ms=lifetime_ms // 2, lifetime_ms=lifetime_ms)
    return DnsLookup(resolver)


def http_fetcher(base_url: str, timeout: float = 5.0):
    """The verifier's policy-fetch seam, aimed at a running portal: same request, same rules,
    except plain HTTP to the test server instead of HTTPS to mta-sts.<domain>."""
    parsed = urlparse(base_url)

    def fetch(domain: str) -> str:
        connection = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=timeout)
        try:
            connection.request(
                "GET", mtasts.POLICY_PATH, headers={"Host": f"{mtasts.POLICY_HOST_PREFIX}{domain}"}
            )
            return read_policy_response(connection.getresponse())
        except (OSError, http.client.HTTPException) as exc:
            raise PolicyFetchError(str(exc), unknown=True) from None
        finally:
            connection.close()

    return fetch


class Api:
    """Django's test client on /api/v1/ with an organisation's bearer token."""

    def __init__(self, token: str):
        self.client = Client()
        self.headers = {"Authorization": f"Bearer {token}"}

    def get(self, path: str, params: dict | None = None):
        return self.client.get(f"/api/v1{path}", params or {}, headers=self.headers)

    def send(self, method: str, path: str, body=None):
        data = json.dumps(body) if body is not None else ""
        return self.client.generic(
            method, f"/api/v1{path}", data, content_type="application/json", headers=self.headers
        )

    def upload(self, path: str, data: bytes, name: str = "logo.svg"):
        from django.core.files.uploadedfile import SimpleUploadedFile

        upload = SimpleUploadedFile(name, data, content_type="image/svg+xml")
        return self.client.post(f"/api/v1{path}", {"logo": upload}, headers=self.headers)


def api_for(organisation, *, read_only: bool = False) -> Api:
    _, raw = api_token_create(
        actor=SYSTEM,
        organisation=organisation,
        name="rw" if not read_only else "ro",
        read_only=read_only,
    )
    return Api(raw)


def portal_fetcher():
    """The policy-fetch seam aimed at the portal in-process (Django's test client)."""
    client = Client()

    def fetch(domain: str) -> str:
        response = client.get(mtasts.POLICY_PATH, HTTP_HOST=f"{mtasts.POLICY_HOST_PREFIX}{domain}")
        return policy_from_response(
            response.status_code, response.get("Content-Type", ""), response.content
        )

    return fetch


def check_now(domain, *, fetch_policy=None, lifetime_ms: int = 3000) -> dict:
    """Run every check of `domain` against the configured resolvers: {key: CheckResult}."""
    from django.conf import settings

    from identity.records import expected_records
    from identity.selectors import posture_snapshot
    from identity.verify import run_checks

    snap = posture_snapshot(domain)
    lookup = lookup_at(settings.MAILHOST_DNS_RESOLVERS[0], lifetime_ms=lifetime_ms)
    results = run_checks(
        snap, expected_records(snap), lookup=lookup, fetch_policy=fetch_policy or portal_fetcher()
    )
    return {r.key: r for r in results}
