# The operator fixtures of the page tests (acme with an owner and a viewer; globex's stranger).
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
