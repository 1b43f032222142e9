import pytest
from django.core.checks import run_checks


def ids() -> set[str]:
    return {message.id for message in run_checks() if message.id.startswith("identity.")}


def test_it_passes_its_own_checks_by_default():
    assert not {i for i in ids() if i.startswith("identity.E")}


@pytest.mark.parametrize(
    ("overrides", "check_id"),
    [
        ({"MAILHOST_DNS_RESOLVERS": ["dns.google"]}, "identity.E001"),
        ({"MAILHOST_DNS_RESOLVERS": ["127.0.0.1@port"]}, "identity.E001"),
        ({"MAILHOST_DNS_TIMEOUT_MS": 9000, "MAILHOST_DNS_LIFETIME_MS": 1000}, "identity.E002"),
        ({"MAILHOST_PUBLIC_IPV4": ["2001:db8::1"]}, "identity.E003"),
        ({"MAILHOST_MTASTS_MODE": "strict"}, "identity.E004"),
        ({"MAILHOST_PORTAL_URL": "portal.example"}, "identity.E005"),
        ({"MAILHOST_DKIM_GRACE_DAYS": -1}, "identity.E006"),
        ({"MAILHOST_MTASTS_MAX_AGE": 10**9}, "identity.E006"),
        ({"MAILHOST_DNS_PUBLISH_TIMEOUT_MS": 0}, "identity.E006"),
        ({"MAILHOST_DNS_PUBLISH_ALLOWED_NETWORKS": ["10.0.0.0/33"]}, "identity.E007"),
        ({"MAILHOST_DNS_PUBLISH_ALLOWED_NETWORKS": ["ns1.example"]}, "identity.E007"),
        ({"MAILHOST_DMARC_RUA": ["dmarc@{domain};p=none"]}, "identity.E008"),
        ({"MAILHOST_TLSRPT_RUA": ["https://r.example/a,b"]}, "identity.E008"),
        (
            {
                "MAILHOST_BIND_ADDRESS": "0.0.0.0",
                "MAILHOST_PUBLIC_IPV4": [],  # noqa: S104
                "MAILHOST_PUBLIC_IPV6": [],
            },
            "identity.W001",
        ),
        ({"MAILHOST_PORTAL_URL": "http://portal.example", "DEBUG": False}, "identity.W002"),
    ],
)
def test_it_reports_misconfiguration_with_a_stable_id(settings, overrides, check_id):
    for name, value in overrides.items():
        setattr(settings, name, value)
    assert check_id in ids()
