from tests.pages.conftest import clean_rate_limits, client_factory  # noqa: F401
