"""The attack tests reuse the DNS-posture fixtures: a domain created the real way (with its
DKIM key) and a real Knot server answering for it."""

from tests.identity.conftest import dns_world, domain, mail_settings, organisation  # noqa: F401
from tests.pages.conftest import clean_rate_limits  # noqa: F401
