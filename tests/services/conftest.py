"""Tests of the domain layer (services and selectors), called directly as pages, the API,
tasks and commands call them. The people and objects are the pages' ones (tests/pages)."""

from tests.pages.conftest import (  # noqa: F401 (fixtures)
    admin_user,
    domain,
    mailbox,
    org,
    viewer,
)
