from tests.delivery.conftest import internet  # noqa: F401
from tests.pages.conftest import clean_rate_limits, client_factory  # noqa: F401
