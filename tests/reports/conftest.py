# The operator fixtures of the page tests (acme with an owner and a viewer; globex's stranger).
# The DNS worlds of the posture tests (Knot on loopback serving the operator's and reverse zones).
from tests.identity.conftest import dns_world, mail_settings  # noqa: E402, F401
from tests.pages.conftest import (  # noqa: F401
    org,
    other_org,
    owner,
    owner_client,
    stranger,
    stranger_client,
    viewer,
    viewer_client,
)
